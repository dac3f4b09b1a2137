import json
from pathlib import Path

import dagster as dg
import datasets
import pytest

from twin_assets.datasets.assets import instruction_dataset
from twin_assets.datasets.curation import curate
from twin_assets.datasets.extracts import Extract, ExtractConfig, cut_extracts
from twin_assets.datasets.keyphrases import key_phrases
from twin_assets.datasets.split import assign_sides, near_duplicate_groups
from twin_assets.datasets.writers import Passage, TemplateWriter
from twin_assets.features.assets import cleaned_documents
from twin_resources import ModelRegistry, VectorStore
from twin_resources.domain.documents import ArticleContent, ArticleDocument, Category
from twin_resources.domain.training import InstructionSample
from twin_resources.llm import LLM
from twin_resources.model_io import ModelVersionIOManager
from twin_resources.progress import ProgressReporter

CORPUS = Path(__file__).resolve().parent.parent / "twin_assets" / "demo" / "corpus" / "articles"
WORDS = ("voice retrieval latency budget chunk model eval pipeline token answer prompt author draft post "
         "reader index vector cache batch stream").split()


def prose(seed: int, sentences: int) -> str:
    """Distinct sentences: word order varies with the seed, so texts share no long word sequence."""
    out = []
    for number in range(sentences):
        words = [WORDS[(seed * 7 + number * 3 + k * (seed % 5 + 2)) % len(WORDS)] for k in range(12)]
        out.append(f"Sentence {seed}-{number} says {' '.join(words)}.")
    return " ".join(out)


def sample(answer: str, document: str = "d") -> InstructionSample:
    return InstructionSample(instruction="Write it.", answer=answer, document_id=document, author_id="a")


def test_extracts_end_on_paragraphs_within_the_bounds_and_keep_the_authors_words():
    paragraphs = [prose(seed, 4) for seed in range(12)]
    text = "\n\n".join(paragraphs[:6]) + "\n\nA Heading Of Its Own\n\n" + "\n\n".join(paragraphs[6:])
    extracts = cut_extracts("doc", text, ExtractConfig(min_chars=800, max_chars=1600))
    assert len(extracts) >= 3 and all(len(e.text) <= 1600 for e in extracts)
    assert all(len(e.text) >= 800 for e in extracts[:-1])
    heading = "A Heading Of Its Own"  # names the next extract, or sits inside one too short to end before it
    assert [p for e in extracts for p in e.text.split("\n\n") if p != heading] == paragraphs  # every word, once
    assert any(e.heading == heading or heading in e.text for e in extracts)
    assert cut_extracts("post", "A short post.\n\nTwo paragraphs.")[0].text == "A short post.\n\nTwo paragraphs."
    assert cut_extracts("empty", "  ") == []

    quoted = " ".join(f'She said "{prose(seed, 1)}" (Then {prose(seed + 1, 1)})' for seed in range(8))
    pieces = cut_extracts("long", quoted, ExtractConfig(min_chars=200, max_chars=400))
    assert len(pieces) > 1 and all(len(p.text) <= 400 for p in pieces)
    assert " ".join(p.text for p in pieces) == quoted  # cut between sentences, quotes and brackets kept


def test_a_cross_post_shares_its_side_and_old_documents_never_move():
    original = "\n\n".join(prose(seed, 5) for seed in range(10))
    shortened = "\n\n".join(prose(seed, 5) for seed in range(7)) + "\n\n" + prose(99, 3)
    texts = {f"doc-{n}": prose(100 + n, 20) for n in range(30)} | {"medium": original, "substack": shortened}
    assert ["medium", "substack"] in near_duplicate_groups(texts)
    sides = assign_sides(texts, test_share=0.3)
    assert sides["medium"] == sides["substack"] and set(sides.values()) == {"train", "test"}

    more = texts | {f"new-{n}": prose(500 + n, 20) for n in range(20)} | {"reposted": original}
    again = assign_sides(more, previous=sides, test_share=0.3)
    assert {d: again[d] for d in sides} == sides and again["reposted"] == sides["medium"]


def test_curation_drops_short_duplicate_and_contaminated_samples_and_counts_each():
    train_answer = prose(1, 6)
    train = [sample(train_answer, "t1"), sample(train_answer + " Indeed.", "t2"), sample("Too short.")]
    leaked = "A fresh opening that is the test's own. " + " ".join(train_answer.split()[:14]) + " " + prose(2, 3)
    test = [sample(prose(3, 6), "x1"), sample(leaked, "x2")]
    kept_train, kept_test, report = curate(train, test)
    assert [s.document_id for s in kept_train] == ["t1"] and [s.document_id for s in kept_test] == ["x1"]
    assert report.dropped == {"shorter than 100 characters": 1, "near-duplicate answer": 1,
                              "test shares 13 words with train": 1}


def test_template_requests_come_from_the_title_heading_and_key_phrases_and_never_write_the_answer():
    text = prose(4, 3)
    [extract] = cut_extracts("doc", text)
    headed = Extract("doc", 1, "Where the time goes", text)
    passages = [Passage(extract, "Latency budgets", Category.ARTICLES), Passage(headed, "Latency budgets",
                                                                             Category.ARTICLES),
                Passage(extract, "", Category.POSTS)]
    written = TemplateWriter().write(passages, per_extract=3)
    assert [len(w.requests) for w in written] == [3, 3, 3]
    assert all(len(set(w.requests)) == 3 for w in written)  # distinct forms
    assert any("Latency budgets" in r for r in written[0].requests)
    assert "Where the time goes" in written[1].requests[0] or "where the time goes" in written[1].requests[0]
    phrases = key_phrases(text, top=2)
    assert phrases and any(phrases[0] in r for w in written for r in w.requests)
    assert all(text[:40] not in r for w in written for r in w.requests)
    [none] = TemplateWriter().write([Passage(Extract("d", 0, None, "1 2 3"), "", Category.ARTICLES)], 1)
    assert none.requests == [] and none.failure


@pytest.fixture
def cleaned(twin_home, warehouse, author, instance):
    for path in sorted(CORPUS.glob("*.md")):
        _, front, body = path.read_text().split("---", 2)
        title = next(line for line in front.splitlines() if line.startswith("title:")).split(":", 1)[1].strip()
        warehouse.upsert_document(ArticleDocument.create(link=f"https://blog.example.com/{path.stem}", author=author,
                                                         platform="blog", content=ArticleContent(title=title, body=body)))
    store = VectorStore(home=str(twin_home))
    instance.add_dynamic_partitions("authors", [author.key])
    assert dg.materialize([cleaned_documents], partition_key=author.key, instance=instance,
                          resources={"warehouse": warehouse, "vector_store": store}).success
    return store


def test_the_instruction_dataset_is_a_version_split_by_document_that_datasets_reads(
        twin_home, warehouse, author, instance, cleaned):
    models = ModelRegistry(home=str(twin_home))
    resources = {"warehouse": warehouse, "vector_store": cleaned, "model_registry": models, "llm": LLM(),
                 "progress": ProgressReporter(), "model_io": ModelVersionIOManager(model_registry=models)}
    run_config = {"ops": {"instruction_dataset": {"config": {"test_share": 0.3, "min_chars": 300, "max_chars": 800}}}}

    def build():
        result = dg.materialize([cleaned_documents, instruction_dataset], selection=[instruction_dataset],
                                partition_key=author.key, instance=instance, resources=resources,
                                run_config=run_config)
        assert result.success
        [event] = result.get_asset_materialization_events()
        checks = {e.event_specific_data.check_name: e.event_specific_data.passed
                  for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}
        return {k: v.value for k, v in event.step_materialization_data.materialization.metadata.items()}, checks

    metadata, checks = build()
    assert checks["documents_on_one_side"] and checks["test_not_contaminated"]
    entry = models.registry.get(metadata["version"])
    assert entry.kind == "dataset" and entry.format == "jsonl"
    card = json.loads((entry.path / "card.json").read_text())
    assert set(card["documents"]["train"]).isdisjoint(card["documents"]["test"])
    assert len(card["documents"]["train"]) + len(card["documents"]["test"]) == 8
    loaded = datasets.load_dataset("json", data_files={side: str(entry.path / f"{side}.jsonl")
                                                       for side in ("train", "test")})
    assert loaded["train"].num_rows == metadata["train_samples"] > 0
    assert {"instruction", "output", "author", "document_id", "link"} <= set(loaded["train"].column_names)
    bodies = " ".join(path.read_text() for path in CORPUS.glob("*.md"))
    assert all(row["output"].split("\n\n")[0][:60] in bodies for row in loaded["train"])  # the author's words
    sides = {row["document_id"]: side for side in ("train", "test") for row in loaded[side]}
    assert all(card["documents"][side].count(document) == 1 for document, side in sides.items())

    again, _ = build()
    assert again["version"] == metadata["version"]  # same documents and settings: same version
