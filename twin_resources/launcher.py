"""Starting an author's collection or training, for the web page and `twin crawl` alike: a run of
`collection_job` (its features automation takes it from there) or `training_job` launched through the GraphQL
API of a running Dagster webserver (`TWIN_DAGSTER_URL`), or, with no webserver configured, the same jobs in a
background `twin crawl` then `twin features`, or `twin train`, recorded on the local Dagster instance (the CLI
runs them in process)."""

import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

COLLECTION_JOB = "collection_job"  # Dagster's features automation takes it from there
TRAINING_JOB = "training_job"  # datasets, SFT, DPO, the evaluation and its gate, the promotion


@dataclass
class Launch:
    how: str  # "dagster" or "local"
    detail: str  # the run id, or the local process's state
    url: str = ""


class Launcher:
    def __init__(self, dagster_url: str = ""):
        self.dagster_url = dagster_url.rstrip("/")
        self._local: dict[tuple[str, str], subprocess.Popen] = {}  # (job, author) -> background process
        self._lock = threading.Lock()

    def collect(self, author_key: str, recrawl: bool = False) -> Launch:
        """The author's collection."""
        if self.dagster_url:
            return self._launch_in_dagster(COLLECTION_JOB, author_key,
                                           {"ops": {"raw_documents": {"config": {"recrawl": recrawl}}}})
        crawl = f'crawl --author "$1" {"--recrawl" if recrawl else ""}'
        return self._launch_locally(COLLECTION_JOB, author_key, [crawl, 'features --author "$1"'])

    def train(self, author_key: str) -> Launch:
        """The author's twin, from their features to its promotion (behind the evaluation's gate)."""
        if self.dagster_url:
            return self._launch_in_dagster(TRAINING_JOB, author_key, {})
        return self._launch_locally(TRAINING_JOB, author_key, ['train --author "$1"'])

    def _launch_in_dagster(self, job: str, author_key: str, run_config: dict) -> Launch:
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
            run_id = client.submit_job_execution(job, tags={"dagster/partition": author_key}, run_config=run_config)
        except DagsterGraphQLClientError as error:
            raise RuntimeError(f"Dagster at {self.dagster_url} refused the run: {error}") from None
        return Launch("dagster", run_id, f"{self.dagster_url}/runs/{run_id}")

    def _launch_locally(self, job: str, author_key: str, commands: list[str]) -> Launch:
        with self._lock:
            running = self._local.get((job, author_key))
            if running is not None and running.poll() is None:
                return Launch("local", "already running")
            twin = str(Path(sys.executable).with_name("twin"))
            script = " && ".join(f'"{twin}" {command}' for command in commands)
            # in the server's process group: stopping `twin serve` stops what it started
            self._local[(job, author_key)] = subprocess.Popen(
                ["sh", "-c", script, job, author_key], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
            return Launch("local", "started")

    def state(self, author_key: str, job: str = COLLECTION_JOB) -> str:
        """"running", "finished", "failed" (exit status) or "" for a local run of `job` for this author."""
        process = self._local.get((job, author_key))
        if process is None:
            return ""
        code = process.poll()
        return "running" if code is None else ("finished" if code == 0 else f"failed (exit {code})")

    def close(self) -> None:
        for process in self._local.values():
            if process.poll() is None:
                process.terminate()
