# The code location: Dagster's gRPC server for twin_assets.definitions, and the image of every run and step
# pod (CPU work: collection, features, datasets, evaluation). Build from the repository root:
#   docker build -f deploy/docker/code.Dockerfile -t ghcr.io/llm-twin/llm-twin:TAG .
FROM python:3.11-slim-bookworm AS build

# llama-cpp-python compiles llama.cpp (GGUF exports and llama.cpp serving); git for the GitHub crawler
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake git \
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
# CPU wheels of torch: this image has no GPU (the trainer image has)
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu .

FROM python:3.11-slim-bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends git libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --create-home twin
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    TWIN_HOME=/data/twin \
    HF_HOME=/data/twin/huggingface \
    PYTHONUNBUFFERED=1
WORKDIR /app
USER 10001
EXPOSE 3030
CMD ["dagster", "api", "grpc", "--module-name", "twin_assets.definitions", "--host", "0.0.0.0", "--port", "3030"]
