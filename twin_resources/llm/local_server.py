"""llama-cpp-python's OpenAI-compatible server for a GGUF file, on 127.0.0.1, for as long as it is needed:
an endpoint for the `openai` backend without a network."""

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from twin_resources.llm.base import LLMError


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def llama_cpp_server(gguf: Path, alias: str = "local", context_length: int = 2048,
                     startup_s: float = 120) -> Iterator[str]:
    """The server's /v1 URL while the block runs. Requests in flight together are queued: by default the
    server would interrupt the one being decoded for the newest."""
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
                                "--port", str(port), "--n_ctx", str(context_length), "--model_alias", alias,
                                "--interrupt_requests", "False"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + startup_s
        while True:
            try:
                if requests.get(f"{url}/models", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise LLMError(f"llama_cpp.server did not start for {gguf}")
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        process.wait(10)
