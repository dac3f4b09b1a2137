import json
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import datasets
import pytest

from tests.fixtures.openai_stub import stub_endpoint
from tests.fixtures.tiny_models import tiny_base
from twin_assets.datasets.assets import instruction_dataset, preference_dataset
from twin_assets.datasets.build import build_instruction_dataset
from twin_assets.datasets.curation import curate
from twin_assets.datasets.extracts import Extract, ExtractConfig, cut_extracts
from twin_assets.datasets.keyphrases import key_phrases
from twin_assets.datasets.preference import build_preference_dataset
from twin_assets.datasets.split import assign_sides, near_duplicate_groups
from twin_assets.datasets.writers import LLMWriter, Passage, TemplateWriter
from twin_assets.features.assets import cleaned_documents
from twin_resources import ModelRegistry, VectorStore
from twin_resources.domain.documents import ArticleContent, ArticleDocument, Category
from twin_resources.domain.features import CleanedDocument
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


# The llm writer and the preference triples


def cleaned_document(document_id: str, content: str, title: str = "Latency budgets") -> CleanedDocument:
    return CleanedDocument(id=document_id, content=content, author_id="a", author_name="Ada Quill", platform="blog",
                           link=f"https://blog.example.com/{document_id}", category=Category.ARTICLES, title=title,
                           source_hash="s", cleaner_version="2", content_hash=document_id)


def test_the_llm_writer_asks_a_real_llama_cpp_server_for_requests_as_json(openai_server):
    llm = LLM(backend="openai", base_url=openai_server, model="twin-tiny", temperature=0, concurrency=2)
    text = "\n\n".join(prose(seed, 3) for seed in range(4))
    passages = [Passage(e, "Latency budgets", Category.ARTICLES)
                for e in cut_extracts("doc", text, ExtractConfig(min_chars=200, max_chars=400))][:3]
    written = LLMWriter(llm, "Ada Quill").write(passages, per_extract=2)
    assert len(written) == len(passages)
    for result, passage in zip(written, passages):
        # a tiny model's requests read as nonsense; the protocol holds: valid requests, or a counted reason
        if result.requests:
            assert len(result.requests) <= 2 and all(12 <= len(r) <= 400 and r not in passage.extract.text
                                                     for r in result.requests)
        else:
            assert result.failure


def test_an_endpoint_that_fails_or_answers_garbage_loses_those_extracts_only():
    documents = [cleaned_document(f"good-{n}", prose(n, 8)) for n in range(6)]
    documents += [cleaned_document("garbage", "GARBAGE. " + prose(40, 8)), cleaned_document("failing", "FAIL. " + prose(41, 8))]
    with stub_endpoint() as endpoint:
        llm = LLM(backend="openai", base_url=endpoint.url, model="stub", concurrency=4, timeout_s=10)
        dataset = build_instruction_dataset(documents, LLMWriter(llm), test_share=0.2, per_extract=2)
    unusable = "extract without a request: the model's answer was unusable"
    assert dataset.curation.dropped[unusable] == 2
    assert {s.document_id for s in dataset.train + dataset.test} == {f"good-{n}" for n in range(6)}
    assert len(dataset.train + dataset.test) == 12  # two requests for each good extract, its answer shared
    assert len(dataset.failures) == 2 and any("500" in f for f in dataset.failures)


def test_preference_triples_pair_the_authors_words_with_what_the_model_writes(base):
    good = [sample(prose(n, 3), f"d{n}") for n in range(3)]
    unfinished = sample(prose(9, 3).rstrip(".") + " and then", "d9")
    lower = sample("and " + prose(8, 3), "d8")
    held = sample(prose(7, 3), "t7")
    llm = LLM(model=str(base.entry.path), max_tokens=8, temperature=0)
    dataset = build_preference_dataset({"train": good + [unfinished, lower], "test": [held]}, llm)
    assert dataset.dropped["chosen does not end a sentence"] == 1
    assert dataset.dropped["chosen does not start with a capital"] == 1
    kept = len(dataset.train) + len(dataset.test)
    assert kept + sum(n for reason, n in dataset.dropped.items() if reason.startswith("the model")) == 4
    assert {t.chosen for t in dataset.train} <= {s.answer for s in good}  # the author's words, verbatim
    assert all(t.rejected and t.rejected != t.chosen for t in dataset.train + dataset.test)
    assert all(t.document_id == "t7" for t in dataset.test)  # the instruction dataset's sides
    assert dataset.rejecting_model == str(base.entry.path)


def _materialize(assets, author, instance, resources, run_config=None, selection=None):
    result = dg.materialize(assets, selection=selection, partition_key=author.key, instance=instance,
                            resources=resources, run_config=run_config or {}, raise_on_error=False)
    metadata = {e.asset_key.path[-1]: {k: v.value for k, v in e.step_materialization_data.materialization.metadata.items()}
                for e in result.get_asset_materialization_events()}
    checks = {e.event_specific_data.check_name: e.event_specific_data.passed
              for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}
    return result, metadata, checks


def twin(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "twin_assets.cli", *arguments], capture_output=True, text=True,
                          timeout=300)


def test_preference_triples_are_a_version_made_from_the_instructions_and_the_promoted_model_and_export(
        twin_home, warehouse, author, instance, cleaned, tmp_path):
    models = ModelRegistry(home=str(twin_home))
    resources = {"warehouse": warehouse, "vector_store": cleaned, "model_registry": models, "llm": LLM(),
                 "progress": ProgressReporter(), "model_io": ModelVersionIOManager(model_registry=models)}
    config = {"ops": {"instruction_dataset": {"config": {"test_share": 0.3, "min_chars": 300, "max_chars": 800}},
                      "preference_dataset": {"config": {"max_tokens": 8}}}}
    assets = [cleaned_documents, instruction_dataset, preference_dataset]

    result, _, _ = _materialize(assets, author, instance, resources, config, [instruction_dataset, preference_dataset])
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "no model is promoted" in failure.step_failure_data.error.message  # the reason, not a trace

    model = tiny_base(models.registry).entry
    models.registry.promote(model.version, "the model to reject", author.key)
    result, metadata, checks = _materialize(assets, author, instance, resources, config,
                                            [instruction_dataset, preference_dataset])
    assert result.success and checks["preference_schema"] and checks["schema"]
    instructions = models.registry.get(metadata["instruction_dataset"]["version"])
    triples = models.registry.get(metadata["preference_dataset"]["version"])
    assert triples.parents == [instructions.version, model.version]  # lineage: made from both
    card = json.loads((triples.path / "card.json").read_text())
    assert card["rejecting_model"] == model.version and card["instructions"] == instructions.version
    loaded = datasets.load_dataset("json", data_files={side: str(triples.path / f"{side}.jsonl")
                                                       for side in ("train", "test")})
    assert loaded["train"].num_rows == metadata["preference_dataset"]["train_triples"] > 0
    assert {"prompt", "chosen", "rejected", "author", "document_id", "link"} <= set(loaded["train"].column_names)
    instruct_card = json.loads((instructions.path / "card.json").read_text())
    assert {row["document_id"] for row in loaded["test"]} <= set(instruct_card["documents"]["test"])
    again, metadata_again, _ = _materialize(assets, author, instance, resources, config,
                                            [instruction_dataset, preference_dataset])
    assert again.success and metadata_again["preference_dataset"]["version"] == triples.version  # reused
    assert len([e for e in models.registry.versions() if e.kind == "dataset"]) == 2

    listing = json.loads(twin("datasets", "list", "--json").stdout)
    assert {e["version"] for e in listing} == {instructions.version, triples.version}
    shown = twin("datasets", "show", triples.version[:10])
    assert shown.returncode == 0 and '"rejecting_model"' in shown.stdout and "chosen:" in shown.stdout
    exported = twin("datasets", "export", str(tmp_path / "out"))
    assert exported.returncode == 0, exported.stderr
    for folder, fields in (("instruct", {"instruction", "output"}), ("preference", {"prompt", "chosen", "rejected"})):
        for side in ("train", "test"):
            rows = [json.loads(line) for line in (tmp_path / "out" / author.key / folder / f"{side}.jsonl").open()]
            assert all(fields | {"author", "document_id", "link"} <= set(row) for row in rows)
    assert "not a dataset" in twin("datasets", "show", model.version[:10]).stderr


def test_an_author_with_too_few_documents_gets_an_empty_split_with_the_reason(twin_home, warehouse, author, instance):
    warehouse.upsert_document(ArticleDocument.create(link="https://blog.example.com/only", author=author, platform="blog",
                                                     content=ArticleContent(title="Only one", body=prose(1, 30))))
    store, models = VectorStore(home=str(twin_home)), ModelRegistry(home=str(twin_home))
    instance.add_dynamic_partitions("authors", [author.key])
    resources = {"warehouse": warehouse, "vector_store": store, "model_registry": models, "llm": LLM(),
                 "progress": ProgressReporter(), "model_io": ModelVersionIOManager(model_registry=models)}
    result, metadata, checks = _materialize([cleaned_documents, instruction_dataset], author, instance, resources,
                                            {"ops": {"instruction_dataset": {"config": {"test_share": 0.01}}}})
    assert result.success and checks["enough_samples"] is False  # a warning, not a failed run
    assert "no test samples" in metadata["instruction_dataset"]["note"]


def test_a_build_killed_midway_registers_nothing_and_the_next_one_succeeds(twin_home, warehouse, author, instance,
                                                                          cleaned, monkeypatch):
    with stub_endpoint() as endpoint:
        monkeypatch.setenv("TWIN_LLM_BASE_URL", endpoint.url)
        monkeypatch.setenv("TWIN_LLM_MODEL", "stub")
        endpoint.hold.clear()  # every request waits: the build is midway when it is killed
        build = subprocess.Popen([sys.executable, "-m", "twin_assets.cli", "datasets", "build", "--writer", "llm",
                                  "--rejected-by", "llm"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while len(endpoint.requests) < 2 and time.monotonic() < deadline and build.poll() is None:
            time.sleep(0.2)
        assert len(endpoint.requests) >= 2, "the build never reached the endpoint"
        build.kill()
        build.wait(30)
        registry = ModelRegistry(home=str(twin_home)).registry
        assert [e for e in registry.versions() if e.kind == "dataset"] == []
        assert json.loads(twin("datasets", "list", "--json").stdout) == []

        endpoint.hold.set()
        again = twin("datasets", "build", "--writer", "llm", "--rejected-by", "llm")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "instruction_dataset" in again.stdout and "preference_dataset" in again.stdout
    assert {e.metadata["dataset"] for e in registry.versions() if e.kind == "dataset"} == {"instructions",
                                                                                          "preferences"}
