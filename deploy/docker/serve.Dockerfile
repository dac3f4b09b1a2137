# The twin's server: `twin serve` (page, OpenAI-compatible API, RAG) for deploy/k8s/serving.yaml.
#   docker build -f deploy/docker/serve.Dockerfile -t ghcr.io/llm-twin/llm-twin-serve:TAG .
FROM python:3.11-slim-bookworm AS build

RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml README.md ./
COPY twin_assets ./twin_assets
COPY twin_resources ./twin_resources
COPY twin_serving ./twin_serving
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu .

FROM python:3.11-slim-bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --create-home twin
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    TWIN_HOME=/data/twin \
    HF_HOME=/data/twin/huggingface \
    PYTHONUNBUFFERED=1
WORKDIR /app
USER 10001
EXPOSE 8000
# SIGTERM (what Kubernetes sends) stops every worker process
ENTRYPOINT ["twin"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
