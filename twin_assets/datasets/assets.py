"""The datasets per author: the instruction dataset, a registry version (kind `dataset`) that flows to
fine-tuning through the `model_io` IO manager like a model."""

import json

import dagster as dg
from pydantic import Field

from twin_assets.checks import Check, CheckOutcome, check_results, check_specs
from twin_assets.datasets.build import InstructionDataset, build_instruction_dataset, write_dataset
from twin_assets.datasets.curation import CONTAMINATION_WORDS, contaminated
from twin_assets.datasets.extracts import ExtractConfig
from twin_assets.datasets.writers import TemplateWriter
from twin_assets.features.assets import cleaned_documents
from twin_assets.metadata import markdown_table
from twin_assets.partitions import authors
from twin_resources.domain.documents import Category
from twin_resources.domain.features import CleanedDocument
from twin_resources.domain.models import RegistryError
from twin_resources.feature_store import cleaned_collection
from twin_resources.model_registry import ModelRegistry, recipe_hash
from twin_resources.vector_store import VectorStore, field_filter, scroll_all
from twin_resources.warehouse import Warehouse, WarehouseError

MIN_TRAIN_SAMPLES = 10
DATASET_CHECKS = (
    Check("documents_on_one_side", "No document has samples on both sides of the split."),
    Check("test_not_contaminated", f"No test answer shares a {CONTAMINATION_WORDS}-word sequence with a train answer."),
    Check("enough_samples", f"At least {MIN_TRAIN_SAMPLES} train samples and one test sample: fewer teach or "
                            "measure little.", dg.AssetCheckSeverity.WARN),
)


class DatasetConfig(dg.Config):
    min_chars: int = Field(1000, ge=1, description="an extract grows paragraph by paragraph to at least this")
    max_chars: int = Field(2000, ge=1, description="and never past this")
    test_share: float = Field(0.1, gt=0, lt=1, description="share of documents held out (by a stable hash)")
    writer: str = Field("template", description="the instruction writer: `template` (offline, the default)")


def _previous_sides(registry, partition: str) -> dict:
    """The sides of the last build for this author: a side, once given, is kept."""
    try:
        previous = registry.output_of("instruction_dataset", partition)
    except RegistryError:
        return {}
    card = json.loads((previous.path / "card.json").read_text())
    return {document_id: side for side in ("train", "test") for document_id in card["documents"][side]}


def _card(dataset: InstructionDataset, author, config: DatasetConfig) -> dict:
    return {"author": author.full_name, "author_key": author.key, "writer": dataset.writer,
            "settings": config.model_dump(), "samples": {"train": len(dataset.train), "test": len(dataset.test)},
            "per_category": dataset.counts(), "extracts": dataset.extracts,
            "dropped": dict(dataset.curation.dropped),
            "documents": {"train": dataset.documents("train"), "test": dataset.documents("test")},
            "note": "" if dataset.train else "no samples: the author has no articles or posts with text to teach from"}


def _outcomes(dataset: InstructionDataset) -> list[CheckOutcome]:
    train_docs = {s.document_id for s in dataset.train}
    both = sorted(train_docs & {s.document_id for s in dataset.test})
    dirty = contaminated(dataset.train, dataset.test)
    return [
        CheckOutcome("documents_on_one_side", not both, f"{len(both)} documents on both sides", both),
        CheckOutcome("test_not_contaminated", not dirty, f"{dirty} contaminated test samples"),
        CheckOutcome("enough_samples", len(dataset.train) >= MIN_TRAIN_SAMPLES and bool(dataset.test),
                     f"{len(dataset.train)} train and {len(dataset.test)} test samples"),
    ]


@dg.asset(partitions_def=authors, group_name="datasets", deps=[cleaned_documents], kinds={"json"},
          io_manager_key="model_io", tags={"stage": "datasets"},
          check_specs=check_specs(DATASET_CHECKS, "instruction_dataset"))
def instruction_dataset(context: dg.AssetExecutionContext, config: DatasetConfig, warehouse: Warehouse,
                        vector_store: VectorStore, model_registry: ModelRegistry):
    """Pairs of (a request, the author's own words): extracts of the author's articles and posts as answers,
    requests from the template writer, split by document (near-duplicates together), curated. A registry
    version of kind `dataset`: the same documents and settings give the same version."""
    if config.writer != "template":
        raise dg.Failure(f"unknown instruction writer {config.writer!r}: this version has `template`")
    try:
        author = warehouse.require_user(context.partition_key)
    except WarehouseError as error:
        raise dg.Failure(str(error)) from None
    with vector_store.read() as client:
        documents = [CleanedDocument(**point.payload) for category in (Category.ARTICLES, Category.POSTS)
                     if client.collection_exists(cleaned_collection(category))
                     for point in scroll_all(client, cleaned_collection(category), field_filter(author_id=author.id))]
    registry = model_registry.registry
    previous = _previous_sides(registry, context.partition_key)
    extracts = ExtractConfig(min_chars=config.min_chars, max_chars=config.max_chars)
    dataset = build_instruction_dataset(documents, TemplateWriter(), previous, config.test_share, extracts)
    card = _card(dataset, author, config)
    recipe = recipe_hash("instruction_dataset", json.dumps(card, sort_keys=True))
    with registry.staging() as staged:
        write_dataset(staged, dataset, card)
        entry = registry.register(staged, name=f"instructions-{author.key}", kind="dataset", format="jsonl",
                                  recipe=recipe, metadata={"author": author.key, **card["samples"]})
    context.log.info(f"{author.full_name}: {len(dataset.train)} train and {len(dataset.test)} test samples "
                     f"from {dataset.extracts} extracts of {len(documents)} documents; dataset {entry.short}")
    preview = [[s.instruction[:90], s.answer[:140], s.category] for s in dataset.train[:5]]
    lengths = [len(s.answer) for s in dataset.train + dataset.test]
    metadata = {
        "version": entry.version, "path": dg.MetadataValue.path(str(entry.path)),
        "train_samples": len(dataset.train), "test_samples": len(dataset.test), "extracts": dataset.extracts,
        "train_documents": len(dataset.documents("train")), "test_documents": len(dataset.documents("test")),
        "dropped": dg.MetadataValue.md(markdown_table(["reason", "samples"], dataset.curation.as_rows() or [["none", 0]])),
        "preview": dg.MetadataValue.md(markdown_table(["instruction", "answer (the author's words)", "category"],
                                                      preview)),
        "answer_chars": dg.MetadataValue.md(markdown_table(
            ["shortest", "median", "longest"],
            [[min(lengths), sorted(lengths)[len(lengths) // 2], max(lengths)]] if lengths else [["-", "-", "-"]])),
    }
    if card["note"]:
        context.log.warning(card["note"])
        metadata["note"] = card["note"]
    yield dg.Output(entry, metadata=metadata, data_version=dg.DataVersion(entry.version))
    yield from check_results(DATASET_CHECKS, _outcomes(dataset))
