"""`twin models ...`, `twin chat` and `twin retrieve`: the model registry, the language-model backends and
retrieval, by hand."""

import json
import textwrap

import click

from twin_resources.model_registry import Registry, RegistryError, default_registry


def _registry() -> Registry:
    return default_registry()


@click.group()
def models():
    """Model versions: list them, promote one for serving, roll back."""


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def models_list(as_json: bool):
    """Every model version with its lineage; * marks the promoted one."""
    registry = _registry()
    entries = registry.versions()
    history = registry.promotions()
    promoted = history[-1].version if history else None
    if as_json:
        click.echo(json.dumps([{**e.model_dump(mode="json"), "promoted": e.version == promoted}
                               for e in entries], indent=2))
        return
    if not entries:
        click.echo("no model versions yet: materialize base_model (`make demo` does)")
        return
    click.echo(f"  {'version':<12}  {'kind':<8} {'format':<21} {'MB':>8}  {'created':<16}  {'from':<12}  name")
    for e in entries:
        marker = "*" if e.version == promoted else " "
        parents = ",".join(p[:12] for p in e.parents) or "-"
        click.echo(f"{marker} {e.short:<12}  {e.kind:<8} {e.format:<21} {sum(e.files.values()) / 1e6:>8.1f}  "
                   f"{e.created_at:%Y-%m-%d %H:%M}  {parents:<12}  {e.name}")


@models.command("promote")
@click.argument("version")
@click.option("--reason", default="promoted by hand", show_default=True, help="Recorded with the promotion.")
def models_promote(version: str, reason: str):
    """Serve VERSION (a hash or its first characters) from now on."""
    try:
        promotion = _registry().promote(version, reason)
    except RegistryError as error:
        raise click.ClickException(f"{error}; nothing was promoted") from None
    click.echo(f"promoted {promotion.version[:12]} ({reason})"
               + (f"; previously {promotion.previous[:12]}" if promotion.previous else ""))


@models.command("rollback")
@click.option("--reason", default="rollback", show_default=True)
def models_rollback(reason: str):
    """Serve again the version promoted before the current one."""
    try:
        promotion = _registry().rollback(reason)
    except RegistryError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"rolled back to {promotion.version[:12]} (from {promotion.previous[:12]})")


@models.command("history")
def models_history():
    """Every promotion, oldest first, with its time and reason."""
    for promotion in _registry().promotions():
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
    """One chat turn with the configured language model; the answer streams as it is written."""
    from twin_resources import llm_from_env
    from twin_resources.llm import LLMError

    llm = llm_from_env(model=model, backend=backend)
    messages = [{"role": "user", "content": prompt}]
    with llm.process_config_and_initialize_cm() as ready:
        try:
            if schema_text:
                click.echo(json.dumps(ready.structured(messages, _schema(schema_text), max_tokens=max_tokens,
                                                       temperature=temperature)))
                return
            for text in ready.stream(messages, max_tokens=max_tokens, temperature=temperature):
                click.echo(text, nl=False)
            click.echo()
        except (LLMError, ValueError) as error:  # ValueError: an invalid schema
            raise click.ClickException(str(error)) from None


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
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of text.")
def retrieve(request: str, author_name: str | None, k: int, expansions: int, reranker: str | None, as_json: bool):
    """The twin's retrieval without generation: self-query, expansion, filtered search, rerank."""
    from twin_resources import resources_from_env
    from twin_serving.retrieval.retriever import RetrievalSettings
    from twin_serving.retrieval.setup import configured_reranker, open_retriever

    try:
        ranker = configured_reranker(reranker)
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    settings = RetrievalSettings(k=k, expansions=expansions)
    with open_retriever(resources_from_env(), settings, use_llm=expansions > 1, reranker=ranker) as retriever:
        result = retriever.retrieve(request, author_name=author_name, k=k)
    if as_json:
        click.echo(json.dumps([h.as_dict() for h in result.hits], indent=2, ensure_ascii=False))
    if not result.hits:
        if not as_json:
            click.echo(f"no passages: {result.reason}")
        return
    if as_json:
        return
    who = result.author.full_name if result.author else "every author"
    timing = ", ".join(f"{s.name} {s.seconds * 1000:.0f} ms" for s in result.spans)
    click.echo(f"{who}; {len(result.queries)} queries; {timing}")
    for rank, hit in enumerate(result.hits, 1):
        p = hit.payload
        click.echo(f"{rank}. {hit.score:.3f}  {p['author_name']}  {p['category']}  {p['link']}")
        click.echo("   " + textwrap.shorten(p["content"], 300))
