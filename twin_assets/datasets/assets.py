"""The datasets per author: instruction pairs and preference triples, each a registry version (kind
`dataset`) that flows to fine-tuning through the `model_io` IO manager like a model. A version is written in
a staging directory and registered whole, so a run killed midway registers nothing."""

import json
from collections.abc import Iterator

import dagster as dg
from pydantic import Field

from twin_assets.checks import Check, CheckOutcome, check_results, check_specs
from twin_assets.datasets.build import (
    INSTRUCTION_FIELDS,
    InstructionDataset,
    build_instruction_dataset,
    read_card,
    read_instruction_dataset,
    read_instruction_samples,
    write_card,
    write_dataset,
    write_jsonl,
)
from twin_assets.datasets.curation import CONTAMINATION_WORDS, contaminated
from twin_assets.datasets.extracts import ExtractConfig
from twin_assets.datasets.preference import (
    PreferenceDataset,
    build_preference_dataset,
    read_preference_dataset,
    triple_record,
)
from twin_assets.datasets.split import SIDES
from twin_assets.datasets.writers import InstructionWriter, LLMWriter, TemplateWriter
from twin_assets.features.assets import cleaned_documents
from twin_assets.metadata import markdown_table
from twin_assets.partitions import authors
from twin_assets.plots import histogram_markdown
from twin_resources.domain.documents import Category, UserDocument
from twin_resources.domain.features import CleanedDocument
from twin_resources.domain.models import ModelVersion, RegistryError
from twin_resources.feature_store import cleaned_collection
from twin_resources.llm import LLM
from twin_resources.model_registry import ModelRegistry, Registry, recipe_hash
from twin_resources.progress import ProgressReporter
from twin_resources.vector_store import VectorStore, field_filter, scroll_all
from twin_resources.warehouse import Warehouse, WarehouseError

# Part of every dataset recipe: bumped when the code makes different files from the same inputs, so a build
# with the same inputs and settings is reused (never generated again) only while the code agrees.
BUILDER_VERSION = "2"
DATASETS = dict(partitions_def=authors, group_name="datasets", io_manager_key="model_io", tags={"stage": "datasets"})
WRITERS = ("template", "llm")
REJECTERS = ("promoted", "llm")
MIN_TRAIN_SAMPLES = 10
DATASET_CHECKS = (
    Check("schema", f"Every sample has non-empty {', '.join(INSTRUCTION_FIELDS[:4])}."),
    Check("documents_on_one_side", "No document has samples on both sides of the split."),
    Check("test_not_contaminated", f"No test answer shares a {CONTAMINATION_WORDS}-word sequence with a train answer."),
    Check("enough_samples", f"At least {MIN_TRAIN_SAMPLES} train samples and one test sample: fewer teach or "
                            "measure little.", dg.AssetCheckSeverity.WARN),
)
PREFERENCE_CHECKS = (
    Check("preference_schema", "Every triple has a non-empty prompt, chosen and rejected text, and chosen is not "
                               "rejected."),
    Check("enough_triples", f"At least {MIN_TRAIN_SAMPLES} train triples and one test triple.",
          dg.AssetCheckSeverity.WARN),
)


class DatasetConfig(dg.Config):
    min_chars: int = Field(1000, ge=1, description="an extract grows paragraph by paragraph to at least this")
    max_chars: int = Field(2000, ge=1, description="and never past this")
    test_share: float = Field(0.1, gt=0, lt=1, description="share of documents held out (by a stable hash)")
    writer: str = Field("template", description="who writes the requests: `template` (offline, from the "
                                                "author's titles, headings and key phrases) or `llm` (the LLM "
                                                "resource, structured output)")
    requests_per_extract: int = Field(1, ge=1, le=5, description="requests written for each extract")


class PreferenceConfig(dg.Config):
    rejected_by: str = Field("promoted", description="who writes the rejected answers: `promoted` (the author's "
                                                     "promoted model, else the default one) or `llm` (the LLM "
                                                     "resource as configured, e.g. an endpoint)")
    max_tokens: int = Field(256, ge=1, description="the longest rejected answer, in tokens")


def _require_author(warehouse: Warehouse, key: str) -> UserDocument:
    try:
        return warehouse.require_user(key)
    except WarehouseError as error:
        raise dg.Failure(str(error)) from None


def documents_in(client, author: UserDocument) -> list[CleanedDocument]:
    """The author's cleaned articles and posts in an open feature store: what the datasets are made of."""
    return [CleanedDocument(**point.payload) for category in (Category.ARTICLES, Category.POSTS)
            if client.collection_exists(cleaned_collection(category))
            for point in scroll_all(client, cleaned_collection(category), field_filter(author_id=author.id))]


def author_documents(vector_store: VectorStore, author: UserDocument) -> list[CleanedDocument]:
    with vector_store.read() as client:
        return documents_in(client, author)


def _previous_sides(registry: Registry, partition: str) -> dict:
    """The sides of the last build for this author: a side, once given, is kept."""
    try:
        previous = registry.output_of("instruction_dataset", partition)
    except RegistryError:
        return {}
    card = read_card(previous.path)
    return {document_id: side for side in SIDES for document_id in card["documents"][side]}


def _writer(config: DatasetConfig, llm: LLM, author: UserDocument) -> InstructionWriter:
    if config.writer not in WRITERS:
        raise dg.Failure(f"unknown instruction writer {config.writer!r}: choose one of {', '.join(WRITERS)}")
    return TemplateWriter() if config.writer == "template" else LLMWriter(llm, author.full_name)


def _no_samples_reason(dataset: InstructionDataset, documents: int) -> str:
    if not documents:
        return "no samples: the author has no cleaned articles or posts (collect and clean some first)"
    if not dataset.train and not dataset.test:
        return f"no samples: none of the {dataset.extracts} extracts of {documents} documents passed curation"
    if not dataset.test:
        return (f"no test samples: {len(dataset.documents('test'))} of {documents} documents are held out; an "
                "author needs more documents (or a larger test_share) for a test split")
    return ""


def instruction_card(dataset: InstructionDataset, author: UserDocument, config: DatasetConfig, documents: int) -> dict:
    return {"kind": "instructions", "author": author.full_name, "author_key": author.key,
            "writer": dataset.writer, "writer_model": dataset.writer_model, "settings": config.model_dump(),
            "samples": {side: len(dataset.side(side)) for side in SIDES}, "per_category": dataset.counts(),
            "extracts": dataset.extracts, "dropped": dict(dataset.curation.dropped),
            "documents": {side: dataset.documents(side) for side in SIDES},
            "note": _no_samples_reason(dataset, documents)}


def _instruction_outcomes(dataset: InstructionDataset) -> list[CheckOutcome]:
    train_docs = {s.document_id for s in dataset.train}
    both = sorted(train_docs & {s.document_id for s in dataset.test})
    dirty = contaminated(dataset.train, dataset.test)
    incomplete = [f"{s.document_id}: {s.instruction[:60]}" for s in dataset.train + dataset.test
                  if not (s.instruction.strip() and s.answer.strip() and s.author and s.document_id)]
    return [
        CheckOutcome("schema", not incomplete, f"{len(incomplete)} incomplete samples", incomplete),
        CheckOutcome("documents_on_one_side", not both, f"{len(both)} documents on both sides", both),
        CheckOutcome("test_not_contaminated", not dirty, f"{dirty} contaminated test samples"),
        CheckOutcome("enough_samples", len(dataset.train) >= MIN_TRAIN_SAMPLES and bool(dataset.test),
                     f"{len(dataset.train)} train and {len(dataset.test)} test samples"),
    ]


def _length_metadata(series: dict[str, list[int]], what: str) -> dict:
    everything = sorted(length for lengths in series.values() for length in lengths)
    figures = [[everything[0], everything[len(everything) // 2], everything[-1]]] if everything else [["-", "-", "-"]]
    metadata = {f"{what}_chars": dg.MetadataValue.md(markdown_table(["shortest", "median", "longest"], figures))}
    if everything:
        metadata[f"{what}_histogram"] = dg.MetadataValue.md(
            histogram_markdown(series, f"{what} length", "characters"))
    return metadata


def _dropped_table(dropped: dict) -> dg.MetadataValue:
    rows = [[reason, count] for reason, count in sorted(dropped.items())]
    return dg.MetadataValue.md(markdown_table(["reason", "dropped"], rows or [["none", 0]]))


def _progress_callbacks(progress: ProgressReporter, description: str, unit: str):
    return (lambda total: progress.start(total, description, unit=unit)), (lambda: progress.advance())


@dg.asset(deps=[cleaned_documents], kinds={"json"}, check_specs=check_specs(DATASET_CHECKS, "instruction_dataset"),
          **DATASETS)
def instruction_dataset(context: dg.AssetExecutionContext, config: DatasetConfig, warehouse: Warehouse,
                        vector_store: VectorStore, model_registry: ModelRegistry, llm: LLM,
                        progress: dg.ResourceParam[ProgressReporter]) -> Iterator:
    """Pairs of (a request, the author's own words): extracts of the author's articles and posts as answers,
    requests from the configured writer, split by document (near-duplicates together), curated. A registry
    version of kind `dataset`: the same documents and settings give the same version."""
    author = _require_author(warehouse, context.partition_key)
    writer = _writer(config, llm, author)
    documents = author_documents(vector_store, author)
    registry = model_registry.registry
    previous = _previous_sides(registry, context.partition_key)
    recipe = recipe_hash("instruction_dataset", BUILDER_VERSION, json.dumps(
        {"documents": sorted((d.id, d.content_hash) for d in documents), "previous_sides": previous,
         "settings": config.model_dump(), "writer": writer.name, "writer_model": writer.model}, sort_keys=True))
    entry = registry.find(recipe=recipe, kind="dataset")
    if entry is not None:
        dataset, card = read_instruction_dataset(entry.path), read_card(entry.path)
        context.log.info(f"{author.full_name}: the same documents and settings built {entry.short} before: reused")
    else:
        extracts = ExtractConfig(min_chars=config.min_chars, max_chars=config.max_chars)
        on_start, on_done = _progress_callbacks(progress, f"requests for {author.full_name}", "extract")
        try:
            dataset = build_instruction_dataset(documents, writer, previous, config.test_share, extracts,
                                                config.requests_per_extract, on_start, on_done)
        finally:
            progress.finish()
        for detail in dataset.failures[:3]:
            context.log.warning(f"the writer failed on an extract: {detail}")
        card = instruction_card(dataset, author, config, len(documents))
        with registry.staging() as staged:
            write_dataset(staged, dataset, card)
            entry = registry.register(staged, name=f"instructions-{author.key}", kind="dataset", format="jsonl",
                                      recipe=_reusable(recipe, dataset.failures),
                                      metadata={"author": author.key, "dataset": "instructions", **card["samples"]})
    context.log.info(f"{author.full_name}: {len(dataset.train)} train and {len(dataset.test)} test samples "
                     f"from {dataset.extracts} extracts of {len(documents)} documents; dataset {entry.short}")
    preview = [[s.instruction[:90], s.answer[:140], s.category] for s in dataset.train[:5]]
    metadata = {
        "version": entry.version, "path": dg.MetadataValue.path(str(entry.path)), "writer": dataset.writer,
        "train_samples": len(dataset.train), "test_samples": len(dataset.test), "extracts": dataset.extracts,
        "train_documents": len(dataset.documents("train")), "test_documents": len(dataset.documents("test")),
        "dropped": _dropped_table(card["dropped"]),
        "preview": dg.MetadataValue.md(markdown_table(["instruction", "answer (the author's words)", "category"],
                                                      preview)),
        **_length_metadata({side: [len(s.answer) for s in dataset.side(side)] for side in SIDES}, "answer"),
    }
    if card["note"]:
        context.log.warning(card["note"])
        metadata["note"] = card["note"]
    yield dg.Output(entry, metadata=metadata, data_version=dg.DataVersion(entry.version))
    yield from check_results(DATASET_CHECKS, _instruction_outcomes(dataset))


def rejecting_llm(config: PreferenceConfig, llm: LLM, registry: Registry, author: UserDocument) -> LLM:
    """The model whose answers are rejected: the author's promoted model (else the default channel's), or
    the LLM resource as it is configured."""
    if config.rejected_by not in REJECTERS:
        raise dg.Failure(f"unknown rejected_by {config.rejected_by!r}: choose one of {', '.join(REJECTERS)}")
    if config.rejected_by == "llm":
        return llm.with_settings(max_tokens=config.max_tokens)
    version = registry.serving_version(author.key)
    if version is None:
        raise dg.Failure("no model is promoted to write the rejected answers: materialize served_model first, or "
                         "set rejected_by to `llm`")
    return llm.with_settings(model=version, backend="auto", base_url="", max_tokens=config.max_tokens)


def preference_card(dataset: PreferenceDataset, instructions: ModelVersion, author: UserDocument,
                    config: PreferenceConfig) -> dict:
    counts = {side: len(dataset.side(side)) for side in SIDES}
    return {"kind": "preferences", "author": author.full_name, "author_key": author.key,
            "instructions": instructions.version, "rejected_by": config.rejected_by,
            "rejecting_model": dataset.rejecting_model, "settings": config.model_dump(), "samples": counts,
            "dropped": dict(dataset.dropped),
            "documents": {side: sorted({s.document_id for s in dataset.side(side)}) for side in SIDES},
            "note": "" if dataset.train else "no triples: the instruction dataset has no sample left to pair"}


def _preference_outcomes(dataset: PreferenceDataset) -> list[CheckOutcome]:
    incomplete = [f"{s.document_id}: {s.prompt[:60]}" for s in dataset.train + dataset.test
                  if not (s.prompt.strip() and s.chosen.strip() and s.rejected.strip()) or s.chosen == s.rejected]
    return [
        CheckOutcome("preference_schema", not incomplete, f"{len(incomplete)} incomplete triples", incomplete),
        CheckOutcome("enough_triples", len(dataset.train) >= MIN_TRAIN_SAMPLES and bool(dataset.test),
                     f"{len(dataset.train)} train and {len(dataset.test)} test triples"),
    ]


@dg.asset(deps=[dg.AssetKey("served_model")], kinds={"json"}, check_specs=check_specs(PREFERENCE_CHECKS, "preference_dataset"),
          **DATASETS)
def preference_dataset(context: dg.AssetExecutionContext, config: PreferenceConfig, instruction_dataset: ModelVersion,
                       warehouse: Warehouse, model_registry: ModelRegistry, llm: LLM,
                       progress: dg.ResourceParam[ProgressReporter]) -> Iterator:
    """Triples of (a request, the author's own words as chosen, a model's answer as rejected) on the
    instruction dataset's sides, for preference tuning (DPO). The rejected answers come from the author's
    promoted model by default: the twin learns to prefer the author's voice to the model's own."""
    author = _require_author(warehouse, context.partition_key)
    registry = model_registry.registry
    rejecter = rejecting_llm(config, llm, registry, author)
    rejecting = rejecter.model if rejecter.model != "promoted" or rejecter.base_url else "promoted"
    recipe = recipe_hash("preference_dataset", BUILDER_VERSION, json.dumps(
        {"instructions": instruction_dataset.version, "model": rejecting, "endpoint": rejecter.base_url,
         "settings": config.model_dump()}, sort_keys=True))
    entry = registry.find(recipe=recipe, kind="dataset")
    if entry is not None:
        dataset = read_preference_dataset(entry.path, author.id)
        context.log.info(f"{author.full_name}: these instructions and this model made {entry.short} before: reused")
    else:
        on_start, on_done = _progress_callbacks(progress, f"rejected answers for {author.full_name}", "prompt")
        try:
            dataset = build_preference_dataset(read_instruction_samples(instruction_dataset.path, author.id),
                                               rejecter, on_start, on_done)
        finally:
            progress.finish()
            rejecter.teardown_after_execution(context)  # a copy of the resource: Dagster closes the original
        for detail in dataset.failures[:3]:
            context.log.warning(f"the rejecting model failed on a prompt: {detail}")
        card = preference_card(dataset, instruction_dataset, author, config)
        parents = [instruction_dataset.version] + ([rejecting] if _is_version(registry, rejecting) else [])
        with registry.staging() as staged:
            for side in SIDES:
                write_jsonl(staged / f"{side}.jsonl", map(triple_record, dataset.side(side)))
            write_card(staged, card)
            entry = registry.register(staged, name=f"preferences-{author.key}", kind="dataset", format="jsonl",
                                      parents=parents, recipe=_reusable(recipe, dataset.failures),
                                      metadata={"author": author.key, "dataset": "preferences", **card["samples"]})
    card = read_card(entry.path)
    context.log.info(f"{author.full_name}: {len(dataset.train)} train and {len(dataset.test)} test triples, "
                     f"rejected by {dataset.rejecting_model[:12]}; dataset {entry.short}")
    preview = [[s.prompt[:80], s.chosen[:100], s.rejected[:100]] for s in dataset.train[:5]]
    metadata = {
        "version": entry.version, "path": dg.MetadataValue.path(str(entry.path)),
        "train_triples": len(dataset.train), "test_triples": len(dataset.test),
        "rejecting_model": dataset.rejecting_model, "dropped": _dropped_table(card["dropped"]),
        "preview": dg.MetadataValue.md(markdown_table(["prompt", "chosen (the author)", "rejected (the model)"],
                                                      preview)),
        **_length_metadata({"chosen": [len(s.chosen) for s in dataset.train + dataset.test],
                            "rejected": [len(s.rejected) for s in dataset.train + dataset.test]}, "answer"),
    }
    if card["note"]:
        context.log.warning(card["note"])
        metadata["note"] = card["note"]
    yield dg.Output(entry, metadata=metadata, data_version=dg.DataVersion(entry.version))
    yield from check_results(PREFERENCE_CHECKS, _preference_outcomes(dataset))


def _reusable(recipe: str, failures: list[str]) -> str:
    """The recipe to record: none when a model failed on some requests, so the next build asks again rather
    than reusing what a passing outage left."""
    return "" if failures else recipe


def _is_version(registry: Registry, version: str) -> bool:
    try:
        registry.get(version)
        return True
    except RegistryError:
        return False
