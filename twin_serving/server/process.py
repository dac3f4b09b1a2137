"""`twin serve` as a child process: what the demo, the benchmark and the tests start and stop."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServerProcess:
    """Starts the server in its own process group and waits until /health says it is ready."""

    def __init__(self, environment: dict | None = None, args: tuple[str, ...] = (), port: int | None = None,
                 log: Path | None = None, ready_timeout_s: float = 180.0, inherit_environment: bool = True):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.environment = {**(os.environ if inherit_environment else {}), **(environment or {})}
        api_key = self.environment.get("TWIN_API_KEY")
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.log = log
        self.args, self.ready_timeout_s = args, ready_timeout_s
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "ServerProcess":
        twin = str(Path(sys.executable).with_name("twin"))
        output = self.log.open("w") if self.log else subprocess.DEVNULL
        self.process = subprocess.Popen([twin, "serve", "--port", str(self.port), *self.args], env=self.environment,
                                        start_new_session=True, stdout=output, stderr=subprocess.STDOUT)
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"twin serve exited with status {self.process.returncode}{self._log_tail()}")
            try:
                if requests.get(f"{self.url}/health", headers=self.headers, timeout=10).ok:
                    return
            except (requests.ConnectionError, requests.Timeout):
                pass
            time.sleep(0.5)
        raise RuntimeError(f"twin serve was not ready within {self.ready_timeout_s:.0f} s{self._log_tail()}")

    def _log_tail(self) -> str:
        return f":\n{self.log.read_text()[-3000:]}" if self.log and self.log.exists() else ""

    def group(self) -> set[int]:
        """Every live process in the server's process group."""
        found = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z" and int(fields[2]) == self.process.pid:  # state, ppid, pgrp
                found.add(int(entry.name))
        return found

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM to the server, which stops its workers; then anything left in the group is killed."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
