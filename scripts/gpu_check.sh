#!/usr/bin/env bash
# The GPU checks as one call on a lent CUDA machine (which has torch and transformers but reaches no registry):
# real-size pretraining, QLoRA and LoRA SFT, DPO and an EXL2 export, by benchmarks/gpu_training.py.
# Beforehand, on this machine: the Python packages the image lacks go in .gpu/site (pip install --target
# for its Python) and `twin datasets export .gpu/data` writes the datasets; both travel with the call.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/twin-gpu-out}
mkdir -p "$out"
export PYTHONPATH="$PWD/.gpu/site:$PWD" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export MAX_JOBS=12 TORCH_CUDA_ARCH_LIST=9.0
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import sys, torch, transformers, peft, trl, datasets, bitsandbytes, pyarrow
print(sys.version.split()[0], 'torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__,
      'trl', trl.__version__, 'datasets', datasets.__version__, 'bitsandbytes', bitsandbytes.__version__, 'pyarrow', pyarrow.__version__)"
# exllamav2 compiles its CUDA extension at its first import: start that now, beside the training
(python3 -c "import exllamav2; print('exllamav2', exllamav2.__version__, 'built')" >"$out/exl2_build.log" 2>&1 &)
python3 benchmarks/gpu_training.py ${TWIN_GPU_ARGS:-} --data .gpu/data --author "${TWIN_GPU_AUTHOR:-paul-iusztin}" --out "$out" 2>&1 \
  | grep -v "it/s\]$" | tee "$out/log.txt"
tail -5 "$out/exl2_build.log"
