"""`twin models ...`, `twin chat` and `twin retrieve`: the model registry, the language-model backends and
retrieval, by hand."""

import json
import textwrap

import click

from twin_assets.cli.common import fail, open_warehouse, require_author, settings

FROM_SCRATCH_NOTE = ("this is the small model trained here from scratch: it shows the plumbing, not the "
                     "author's voice; set TWIN_BASE_MODEL (a real base model) or TWIN_LLM_BASE_URL (an "
                     "OpenAI-compatible endpoint) for real answers")


def _registry():
    from twin_resources.model_registry import default_registry

    return default_registry(str(settings().twin_home))


def _channel(author_name: str | None) -> str:
    """The promotion channel: the author's key, or `default`."""
    from twin_resources.domain.models import DEFAULT_CHANNEL

    if not author_name:
        return DEFAULT_CHANNEL
    with open_warehouse() as warehouse:
        return require_author(warehouse, author_name).key


def _registry_call(action):
    from twin_resources.domain.models import RegistryError

    try:
        return action()
    except RegistryError as error:
        fail(str(error))


@click.group()
def models():
    """Model versions: list them, promote one for an author (or everyone), approve a candidate, roll back."""


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def models_list(as_json: bool):
    """Every model version with its lineage and the channels it is promoted in."""
    from twin_resources.domain.models import DEFAULT_CHANNEL

    registry = _registry()
    entries = registry.versions()
    promoted = registry.promoted_versions()
    channels_of = {e.version: [c for c, v in promoted.items() if v == e.version] for e in entries}
    if as_json:
        click.echo(json.dumps([{**e.model_dump(mode="json"), "promoted": DEFAULT_CHANNEL in channels_of[e.version],
                                "promoted_for": channels_of[e.version]} for e in entries], indent=2))
        return
    if not entries:
        fail("no model versions yet: materialize base_model (`make demo` does)")
    click.echo(f"  {'version':<12}  {'kind':<8} {'format':<21} {'MB':>8}  {'created':<16}  {'from':<12}  "
               f"{'promoted for':<16}  name")
    for e in entries:
        parents = ",".join(p[:12] for p in e.parents) or "-"
        marker = "*" if DEFAULT_CHANNEL in channels_of[e.version] else " "
        click.echo(f"{marker} {e.short:<12}  {e.kind:<8} {e.format:<21} {sum(e.files.values()) / 1e6:>8.1f}  "
                   f"{e.created_at:%Y-%m-%d %H:%M}  {parents:<12}  {','.join(channels_of[e.version]) or '-':<16}  "
                   f"{e.name}")
    click.echo("* = promoted in the default channel; from: the versions it was made from; promoted for: the "
               "twins it answers as (an author's key, or default: everyone without a twin of their own)", err=True)


@models.command("promote")
@click.argument("version")
@click.option("--author", "author_name", help="Promote for this author only (default: everyone's default).")
@click.option("--reason", default="promoted by hand", show_default=True, help="Recorded with the promotion.")
def models_promote(version: str, author_name: str | None, reason: str):
    """Serve VERSION (a hash or its first characters) from now on, for an author or by default."""
    channel = _channel(author_name)
    promotion = _registry_call(lambda: _registry().promote(version, reason, channel))
    click.echo(f"promoted {promotion.version[:12]} for {channel} ({reason})"
               + (f"; previously {promotion.previous[:12]}" if promotion.previous else ""))


@models.command("approve")
@click.argument("version")
@click.option("--author", "author_name", required=True, help="The author whose twin VERSION is.")
def models_approve(version: str, author_name: str):
    """Promote the candidate waiting for approval (TWIN_PROMOTION=manual): it passed its evaluation gate."""
    channel = _channel(author_name)
    promotion = _registry_call(lambda: _registry().approve(version, channel))
    click.echo(f"approved and promoted {promotion.version[:12]} for {channel}"
               + (f"; previously {promotion.previous[:12]}" if promotion.previous else ""))


@models.command("rollback")
@click.option("--author", "author_name", help="Roll back this author's twin (default: the default channel).")
@click.option("--reason", default="rollback", show_default=True)
def models_rollback(author_name: str | None, reason: str):
    """Serve again the version promoted before the current one."""
    channel = _channel(author_name)
    promotion = _registry_call(lambda: _registry().rollback(reason, channel))
    click.echo(f"rolled back {channel} to {promotion.version[:12]} (from {promotion.previous[:12]})")


@models.command("history")
@click.option("--author", "author_name", help="This author's promotions (default: the default channel).")
def models_history(author_name: str | None):
    """Every promotion, oldest first, with its time and reason."""
    channel = _channel(author_name)
    history = _registry_call(lambda: _registry().promotions(channel))
    if not history:
        fail(f"no promotions in {channel} yet")
    click.echo(f"{'when':<19}  {'version':<12}  reason  ({channel})")
    for promotion in history:
        click.echo(f"{promotion.at:%Y-%m-%d %H:%M:%S}  {promotion.version[:12]}  {promotion.reason}")


@click.command()
@click.argument("prompt")
@click.option("--model", help="A registry version, model directory or GGUF file (default: the promoted one).")
@click.option("--backend", type=click.Choice(["auto", "transformers", "llama_cpp", "openai"]))
@click.option("--max-tokens", default=128, show_default=True, type=click.IntRange(1, 8192))
@click.option("--temperature", default=0.7, show_default=True, type=click.FloatRange(0, 2))
@click.option("--json-schema", "schema_text", help="Answer as JSON matching this schema (a JSON string).")
def chat(prompt: str, model: str | None, backend: str | None, max_tokens: int, temperature: float,
         schema_text: str | None):
    """One chat turn with the language model alone, no retrieval (`twin serve` answers with RAG)."""
    from twin_resources.configured import llm_from_env
    from twin_resources.llm import LLMError

    llm = llm_from_env(settings(), model=model, backend=backend)
    messages = [{"role": "user", "content": prompt}]
    with llm.process_config_and_initialize_cm() as ready:
        try:
            backend_ready = ready.open()
            click.echo(f"(model {backend_ready.model[:40]}; no retrieval: the model alone)", err=True)
            if ready.serves_from_scratch_model():
                click.echo(f"({FROM_SCRATCH_NOTE})", err=True)
            if schema_text:
                click.echo(json.dumps(ready.structured(messages, _schema(schema_text), max_tokens=max_tokens,
                                                       temperature=temperature)))
                return
            for text in ready.stream(messages, max_tokens=max_tokens, temperature=temperature):
                click.echo(text, nl=False)
            click.echo()
        except (LLMError, ValueError) as error:  # ValueError: an invalid schema
            fail(str(error))


def _schema(text: str) -> dict:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise click.BadParameter(f"not JSON: {error}", param_hint="--json-schema") from None


@click.command()
@click.argument("request")
@click.option("--author", "author_name", help="Whose writing (default: the author the request names, else all).")
@click.option("--k", default=5, show_default=True, type=click.IntRange(1, 50), help="How many passages.")
@click.option("--expansions", default=1, show_default=True, type=click.IntRange(1, 8),
              help="Queries searched in all: the request plus reformulations by the configured LLM.")
@click.option("--reranker", help="Cross-encoder: hub id or directory ('none' to skip; default TWIN_RERANKER_MODEL).")
@click.option("--per-document", default=1, show_default=True, type=click.IntRange(0, 50),
              help="Passages of one document among them at most (0: no limit).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of text.")
def retrieve(request: str, author_name: str | None, k: int, expansions: int, reranker: str | None, per_document: int,
             as_json: bool):
    """The twin's retrieval without generation: self-query, expansion, hybrid filtered search, rerank."""
    from twin_resources.configured import resources_from_env
    from twin_serving.retrieval.retriever import RetrievalSettings
    from twin_serving.retrieval.setup import configured_reranker, open_retriever

    try:
        ranker = configured_reranker(reranker)
    except ValueError as error:
        fail(str(error))
    retrieval_settings = RetrievalSettings(k=k, expansions=expansions, per_document=per_document)
    with open_retriever(resources_from_env(settings()), retrieval_settings, use_llm=expansions > 1,
                        reranker=ranker) as retriever:
        result = retriever.retrieve(request, author_name=author_name, k=k)
    if as_json:
        click.echo(json.dumps([h.as_dict() for h in result.hits], indent=2, ensure_ascii=False))
    if not result.hits:
        fail(f"no passages: {result.reason}")
    if as_json:
        return
    who = result.author.full_name if result.author else "every author"
    where = result.category.value if result.category else "every category"
    timing = ", ".join(f"{s.name} {s.seconds * 1000:.0f} ms" for s in result.spans)
    click.echo(f"{who}, {where}; {len(result.queries)} queries; {timing}")
    for rank, hit in enumerate(result.hits, 1):
        p = hit.passage
        click.echo(f"{rank}. {hit.score:.3f}  {p.author_name}  {p.category.value}  {p.link}")
        click.echo("   " + textwrap.shorten(p.content, 300))


COMMANDS = (models, chat, retrieve)
