"""The demo: a fresh clone goes from links to the graph's latest stage for an author whose writing ships
with the project (original articles and posts, a LinkedIn export and a small git repository)."""

import os
import shutil
import subprocess
import time
import zipfile
from pathlib import Path

from twin_assets.demo.site import CORPUS, LocalSite, demo_pages
from twin_assets.runs import run_job_for_authors
from twin_resources.configured import warehouse_from_env
from twin_resources.links import register_links
from twin_resources.settings import load_settings, twin_home

DEMO_AUTHOR = "Mara Lindqvist"
_FIXED_COMMIT_ENV = {"GIT_AUTHOR_NAME": DEMO_AUTHOR, "GIT_AUTHOR_EMAIL": "mara@example.org",
                     "GIT_COMMITTER_NAME": DEMO_AUTHOR, "GIT_COMMITTER_EMAIL": "mara@example.org",
                     "GIT_AUTHOR_DATE": "2026-03-01T12:00:00Z", "GIT_COMMITTER_DATE": "2026-03-01T12:00:00Z"}


def build_git_repository(source: Path, target: Path) -> Path:
    """A real git repository of `source`'s files (plus a binary the crawler must skip), same commit every time."""
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)
    (target / "docs").mkdir(exist_ok=True)
    (target / "docs" / "diagram.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64))
    environment = {**os.environ, **_FIXED_COMMIT_ENV}
    for command in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"],
                    ["git", "commit", "-q", "-m", "tinyevals: first release"]):
        subprocess.run(command, cwd=target, check=True, env=environment, capture_output=True)
    return target


def build_linkedin_export(shares_csv: Path, target: Path) -> Path:
    """A LinkedIn data-export archive holding `Shares.csv`, as LinkedIn sends it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w") as archive:
        archive.write(shares_csv, "Basic_LinkedInDataExport/Shares.csv")
    return target


def _serve_demo_site(port: int, patience_s: float = 30.0) -> LocalSite | None:
    """The demo site on its fixed port (its links include it). The listener reuses addresses already; a
    socket that is not listening (another program's outgoing connection, where the machine's ephemeral
    ports include this one) can still hold the port for a few seconds, so we wait that out, saying so."""
    deadline = time.monotonic() + patience_s
    while True:
        try:
            return LocalSite(demo_pages(), port=port)
        except OSError as error:
            if time.monotonic() > deadline:
                print(f"cannot serve the demo site on 127.0.0.1:{port} ({error}); choose another with --port")
                return None
            print(f"127.0.0.1:{port} is busy ({error.strerror}); waiting for it to be free ...", flush=True)
            time.sleep(2)


def run_demo(port: int) -> bool:
    """Serve the demo site, register the demo author's links and run the main job; True on success."""
    workdir = twin_home() / "demo"
    repository = build_git_repository(CORPUS / "repo", workdir / "tinyevals")
    export = build_linkedin_export(CORPUS / "linkedin" / "Shares.csv", workdir / "linkedin-export.zip")
    site = _serve_demo_site(port)
    if site is None:
        return False
    with site:
        urls = [site.url(path) for path in sorted(site.server.pages)] + [str(repository), str(export)]
        with warehouse_from_env() as warehouse:
            registration = register_links(warehouse, DEMO_AUTHOR, urls)
            print(f"demo author {DEMO_AUTHOR}: {len(urls)} links ({len(registration.added)} new), "
                  f"site at {site.base_url}, warehouse: {warehouse.location}")
        # a candidate the gate refuses (a second run's retrained twin that is no better) leaves the promoted
        # twin answering: the demo goes on with it
        succeeded = run_job_for_authors("main_job", [registration.author],
                                        {"ops": {"raw_documents": {"config": {"recrawl": True}}}}, refusal_fails=False)
    if succeeded:
        succeeded = ask_the_server(f"Write a short post in {DEMO_AUTHOR}'s voice about chunking documents")
    if succeeded:
        print(f'next: `twin serve` and open http://127.0.0.1:8000, `twin search "how do you chunk documents?" '
              f'--author "{DEMO_AUTHOR}"`, `twin models list`, `twin traces`, or `twin ui` to see the graph')
    return succeeded


def ask_the_server(question: str) -> bool:
    """The main job's last step: `twin serve` starts on the fresh model and stores and answers, streaming,
    through the official OpenAI client."""
    import openai
    import requests

    from twin_serving.server.process import ServerProcess

    print("starting twin serve and asking it one question ...", flush=True)
    try:
        with ServerProcess(log=twin_home() / "demo" / "serve.log") as server:
            client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=load_settings().serve.api_key.get_secret_value() or "none")
            stream = client.chat.completions.create(model="twin", stream=True,
                                                    messages=[{"role": "user", "content": question}])
            print(f"> {question}\n", flush=True)
            sources, model = [], ""
            for chunk in stream:
                sources = (chunk.model_extra or {}).get("sources") or sources
                model = chunk.model
                if chunk.choices and chunk.choices[0].delta.content:
                    print(chunk.choices[0].delta.content, end="", flush=True)
            print("\n\nsources: " + "; ".join(f"[{s['number']}] {s['title']} ({s['link']})" for s in sources))
            print(f"(model {model[:12]}; the trace of this request: `twin traces`)")
            note = requests.get(f"{server.url}/health", headers=server.headers, timeout=10).json().get("model_note")
            if note:
                print(f"(the served model is {note})")
    except (RuntimeError, openai.OpenAIError) as error:
        print(f"the server did not answer: {error}")
        return False
    return True
