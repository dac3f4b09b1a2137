"""`twin models ...` and `twin chat`: the model registry and the language-model backends by hand."""

import json
import sys

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
    promoted = registry.promotions()[-1].version if registry.promotions() else None
    if as_json:
        click.echo(json.dumps([{**e.model_dump(mode="json"), "promoted": e.version == promoted}
                               for e in entries], indent=2))
        return
    if not entries:
        click.echo("no model versions yet: materialize base_model (`make demo` does)")
        return
    click.echo(f"  {'version':<12}  {'kind':<6} {'format':<12} {'MB':>8}  {'created':<16}  {'from':<12}  name")
    for e in entries:
        marker = "*" if e.version == promoted else " "
        parents = ",".join(p[:12] for p in e.parents) or "-"
        click.echo(f"{marker} {e.short:<12}  {e.kind:<6} {e.format:<12} {sum(e.files.values()) / 1e6:>8.1f}  "
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
    sys.stdout.flush()


def _schema(text: str) -> dict:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise click.BadParameter(f"not JSON: {error}", param_hint="--json-schema") from None
