"""Starting an author's collection, for the web page and `twin crawl` alike: a run of `collection_job`
launched through the GraphQL API of a running Dagster webserver (`TWIN_DAGSTER_URL`; its features
automation takes it from there), or, with no webserver configured, the same jobs in a background
`twin crawl` then `twin features` recorded on the local Dagster instance (the CLI runs them in process)."""

import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

COLLECTION_JOB = "collection_job"  # Dagster's features automation takes it from there


@dataclass
class Launch:
    how: str  # "dagster" or "local"
    detail: str  # the run id, or the local process's state
    url: str = ""


class CollectionLauncher:
    def __init__(self, dagster_url: str = ""):
        self.dagster_url = dagster_url.rstrip("/")
        self._local: dict[str, subprocess.Popen] = {}
        self._lock = threading.Lock()

    def start(self, author_key: str, recrawl: bool = False) -> Launch:
        if self.dagster_url:
            run_id = self._launch_in_dagster(author_key, recrawl)
            return Launch("dagster", run_id, f"{self.dagster_url}/runs/{run_id}")
        return self._launch_locally(author_key, recrawl)

    def _launch_in_dagster(self, author_key: str, recrawl: bool) -> str:
        import requests
        from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

        try:
            requests.get(f"{self.dagster_url}/server_info", timeout=10).raise_for_status()
        except requests.RequestException as error:
            raise RuntimeError(f"cannot reach Dagster at {self.dagster_url}: {error}") from None
        address = urlparse(self.dagster_url)
        client = DagsterGraphQLClient(address.hostname, port_number=address.port, use_https=address.scheme == "https",
                                      path_prefix=address.path, timeout=30)
        try:
            return client.submit_job_execution(COLLECTION_JOB, tags={"dagster/partition": author_key},
                                               run_config={"ops": {"raw_documents": {"config": {"recrawl": recrawl}}}})
        except DagsterGraphQLClientError as error:
            raise RuntimeError(f"Dagster at {self.dagster_url} refused the run: {error}") from None

    def _launch_locally(self, author_key: str, recrawl: bool) -> Launch:
        with self._lock:
            running = self._local.get(author_key)
            if running is not None and running.poll() is None:
                return Launch("local", "already running")
            twin = str(Path(sys.executable).with_name("twin"))
            script = f'"{twin}" crawl --author "$1" {"--recrawl" if recrawl else ""} && "{twin}" features --author "$1"'
            self._local[author_key] = subprocess.Popen(
                ["sh", "-c", script, "collect", author_key], stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            return Launch("local", "started")

    def state(self, author_key: str) -> str:
        """"running", "finished", "failed" (exit status) or "" for a local collection of this author."""
        process = self._local.get(author_key)
        if process is None:
            return ""
        code = process.poll()
        return "running" if code is None else ("finished" if code == 0 else f"failed (exit {code})")

    def close(self) -> None:
        for process in self._local.values():
            if process.poll() is None:
                process.terminate()
