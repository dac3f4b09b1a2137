# The GPU trainer: SFT and DPO (trl, QLoRA with bitsandbytes) and EXL2 exports (exllamav2), for the training
# steps' GPU pods and for trainer pods (TWIN_TRAINER_LAUNCH=k8s, TWIN_TRAINER_IMAGE).
#   docker build -f deploy/docker/trainer.Dockerfile -t ghcr.io/llm-twin/llm-twin-trainer:TAG .
FROM nvidia/cuda:12.8.1-cudnn-devel-ubuntu24.04 AS build

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python3-dev build-essential cmake git \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml README.md ./
COPY twin_assets ./twin_assets
COPY twin_resources ./twin_resources
COPY twin_serving ./twin_serving
# CUDA wheels of torch from PyPI; [gpu]: exllamav2 and bitsandbytes
RUN pip install "./[gpu]"

FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 git libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --create-home twin
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    TWIN_HOME=/data/twin \
    HF_HOME=/data/twin/huggingface \
    PYTHONUNBUFFERED=1
WORKDIR /app
USER 10001
CMD ["python", "-m", "twin_assets.trainers.trl_trainer"]
