"""llama.cpp's own HF-to-GGUF converter, run as a separate process.

No wheel ships it; llama-cpp-python's source distribution carries it (with its `conversion/` package and the
`gguf-py` it needs; PyPI's `gguf` is too old). We fetch that sdist once per llama-cpp-python version into the
user cache, or use a llama.cpp checkout named by `TWIN_LLAMA_CPP_DIR`.
"""

import importlib.metadata
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import platformdirs
from filelock import FileLock

from twin_resources.settings import load_settings

CONVERTER_PARTS = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/")
_ENTRY = Path(__file__).with_name("convert_entry.py")


class ExportError(RuntimeError):
    """A conversion or quantization that failed: nothing it produced is registered."""


def converter_directory() -> Path:
    """A directory holding convert_hf_to_gguf.py, conversion/ and gguf-py/, fetched on first use."""
    configured = load_settings().llama_cpp_dir
    if configured:
        return Path(configured)
    version = importlib.metadata.version("llama-cpp-python")
    target = Path(platformdirs.user_cache_dir("llm-twin")) / f"llama.cpp-converter-{version}"
    if (target / "convert_hf_to_gguf.py").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{target}.lock"):
        if not (target / "convert_hf_to_gguf.py").is_file():
            _fetch(version, target)
    return target


def _fetch(version: str, target: Path) -> None:
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                   f"llama-cpp-python=={version}", "--dest", scratch]
        result = subprocess.run(command, capture_output=True, text=True)
        archives = list(Path(scratch).glob("llama_cpp_python-*.tar.gz"))
        if result.returncode or not archives:
            raise ExportError(f"cannot fetch llama.cpp's converter ({' '.join(command[2:])}): "
                              f"{result.stderr.strip()[-500:]}; or set TWIN_LLAMA_CPP_DIR to a llama.cpp checkout")
        unpacked = Path(scratch) / "converter"
        with tarfile.open(archives[0]) as archive:
            prefix = f"{archive.getnames()[0].split('/')[0]}/vendor/llama.cpp/"
            wanted = [m for m in archive.getmembers()
                      if m.name.startswith(prefix) and m.name[len(prefix):].startswith(CONVERTER_PARTS)]
            for member in wanted:
                member.name = member.name[len(prefix):]
            archive.extractall(unpacked, members=wanted, filter="data")
        shutil.move(str(unpacked), str(target))


def convert_to_gguf(model_dir: Path, outfile: Path, outtype: str = "f16") -> Path:
    """Convert a transformers model directory to one GGUF file (`outtype` f32, f16, bf16 or q8_0)."""
    outfile.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, str(_ENTRY), str(converter_directory()), str(model_dir),
               "--outfile", str(outfile), "--outtype", outtype]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode or not outfile.is_file():
        outfile.unlink(missing_ok=True)
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        raise ExportError(f"llama.cpp's converter failed on {model_dir}: {lines[-1] if lines else 'no output'}")
    return outfile
