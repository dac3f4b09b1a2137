"""Cleaning, chunking, the incremental feature pipeline over a real embedded Qdrant store, and its assets."""

from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from twin_assets.collection.assets import RAW_ASSETS
from twin_assets.features.assets import cleaned_documents, embedded_chunks
from twin_assets.features.chunking import Chunker, ChunkingConfig
from twin_assets.features.cleaning import clean_code, clean_prose
from twin_assets.features.pipeline import chunk_collection, sync_cleaned_documents, sync_embedded_chunks
from twin_assets.features.search import search_chunks
from twin_resources import ModelRegistry, ProgressReporter, VectorStore
from twin_resources.domain.documents import (
    ArticleContent,
    ArticleDocument,
    Category,
    PostContent,
    PostDocument,
    RepositoryContent,
    RepositoryDocument,
    RepositoryFile,
)
from twin_resources.embedding import Embedder
from twin_resources.embedding_calibration import (
    QUALITY_FLOOR,
    Calibration,
    cache_file,
    load_or_calibrate,
    sample_texts,
)
from twin_resources.judge import Judge
from twin_resources.llm import LLM
from twin_resources.vector_store import field_filter, scroll_all

CORPUS = Path(__file__).resolve().parent.parent / "twin_assets" / "demo" / "corpus" / "articles"


def read_article(path: Path) -> tuple[str, str]:
    _, front, body = path.read_text().split("---", 2)
    title = next(line for line in front.splitlines() if line.startswith("title:")).split(":", 1)[1].strip()
    return title, body.strip()


def article(author, name: str, title: str, body: str) -> ArticleDocument:
    return ArticleDocument.create(link=f"https://blog.example.com/{name}", author=author, platform="blog",
                                  content=ArticleContent(title=title, body=body))


@pytest.fixture
def chunker(embedder) -> Chunker:
    return Chunker(embedder.tokenizer, embedder.max_tokens, ChunkingConfig(article_tokens=128))


@pytest.fixture
def store(twin_home) -> VectorStore:
    return VectorStore(home=str(twin_home))


@pytest.fixture
def demo_articles(warehouse, author) -> list[ArticleDocument]:
    documents = [article(author, path.stem, *read_article(path)) for path in sorted(CORPUS.glob("*.md"))[:4]]
    for document in documents:
        warehouse.upsert_document(document)
    return documents


def materialize_features(warehouse, store, chunker, embedder, author):
    with store.write() as client:
        cleaned = sync_cleaned_documents(warehouse, client, author)
        chunks = sync_embedded_chunks(client, embedder, chunker, author)
    return cleaned, chunks


# Cleaning


def test_prose_loses_markup_and_decoration_but_keeps_paragraphs_and_punctuation():
    raw = ("Share this post\n\n# The Title Here\n\nFirst **bold** claim, with a [link](https://x.y) and "
           "![img](a.png)an image.\u200b Second\nline of the same paragraph!\n\n"
           "  * item one 🚀\n  * item two\n\nA 𝐛𝐨𝐥𝐝 <b>closing</b> thought?\n\nSubscribe\n\n"
           "Discussion about this post\n\nComments")
    cleaned = clean_prose(raw, title="The Title Here - by Someone")
    assert cleaned == ("First bold claim, with a link and an image. Second line of the same paragraph!\n\n"
                       "- item one\n- item two\n\nA bold closing thought?")


def test_code_keeps_its_indentation_and_newlines():
    code = "\ufeffdef f(x):\r\n    if x:  \r\n\treturn x\x00\n\n\n\nprint(f(1))\n"
    assert clean_code(code) == "def f(x):\n    if x:\n\treturn x\n\nprint(f(1))"


# Chunking


def test_chunks_never_exceed_the_limit_and_cover_every_token(embedder, chunker):
    title, body = read_article(sorted(CORPUS.glob("*.md"))[0])
    text = clean_prose(body) + "\n\n" + "word " * 400  # one 400-token "sentence" must be cut too
    [chunks] = chunker.prose([text], Category.ARTICLES)
    counts = [len(e.ids) for e in embedder.tokenizer.encode_batch([c for c, _ in chunks])]
    assert len(chunks) > 3
    assert counts == [tokens for _, tokens in chunks]  # the packer's own counts are exact
    assert max(counts) <= 128
    whole = len(embedder.tokenizer.encode(text, add_special_tokens=False).ids)
    assert sum(count - 2 for count in counts) == whole  # no overlap by default: every token exactly once


def test_overlap_repeats_the_previous_chunks_last_sentences(embedder):
    chunker = Chunker(embedder.tokenizer, embedder.max_tokens, ChunkingConfig(article_tokens=64, article_overlap=20))
    text = " ".join(f"Sentence number {i} says something short." for i in range(30))
    [chunks] = chunker.prose([text], Category.ARTICLES)
    assert all(tokens <= 64 for _, tokens in chunks)
    first, second = chunks[0][0], chunks[1][0]
    assert second.split(".")[0] + "." in first  # the second opens with the first's last sentence


def test_python_is_split_on_definitions_and_other_files_on_lines(embedder):
    chunker = Chunker(embedder.tokenizer, embedder.max_tokens, ChunkingConfig(code_tokens=48))
    code = "\n\n".join(f"def function_{i}(value):\n    total = value * {i}\n    return total + {i}" for i in range(6))
    chunks = chunker.code("module.py", code)
    assert all(tokens <= 48 for _, tokens in chunks) and len(chunks) > 1
    assert all(chunk.lstrip().startswith("def ") for chunk, _ in chunks)
    lines = chunker.code("notes.txt", "\n".join(f"line {i} of plain notes" for i in range(60)))
    assert all(tokens <= 48 for _, tokens in lines) and all(not c.startswith("\n") for c, _ in lines)


# The pipeline over a real embedded Qdrant store


def test_features_are_incremental_by_content_hash(warehouse, store, chunker, embedder, author, demo_articles):
    cleaned, chunks = materialize_features(warehouse, store, chunker, embedder, author)
    total = chunks.total("stored")
    assert cleaned.total("added") == 4 and chunks.total("added") == total > 8

    cleaned, chunks = materialize_features(warehouse, store, chunker, embedder, author)
    assert cleaned.total("unchanged") == 4 and chunks.total("unchanged") == total
    assert chunks.tokens_embedded == 0 and chunks.total("added") + chunks.total("updated") == 0

    title, body = read_article(sorted(CORPUS.glob("*.md"))[5])
    new = article(author, "new-one", title, body)
    warehouse.upsert_document(new)
    _, chunks = materialize_features(warehouse, store, chunker, embedder, author)
    with store.read() as client:
        new_chunks = client.count(chunk_collection(Category.ARTICLES), count_filter=field_filter(document_id=new.id)).count
    assert chunks.total("added") == new_chunks > 0 and chunks.total("unchanged") == total

    changed = demo_articles[0].model_copy(deep=True)
    changed.content.body += "\n\nOne more closing paragraph, added later by the author."
    changed.content_hash = "changed"
    warehouse.upsert_document(changed)
    _, chunks = materialize_features(warehouse, store, chunker, embedder, author)
    assert 1 <= chunks.total("added") + chunks.total("updated") <= 2  # only the tail of one article
    assert chunks.total("unchanged") >= total + new_chunks - 2

    warehouse.collection(Category.ARTICLES.value).delete_one({"_id": demo_articles[1].id})
    cleaned, chunks = materialize_features(warehouse, store, chunker, embedder, author)
    assert cleaned.total("removed") == 1 and chunks.total("removed") > 0
    with store.read() as client:
        left = {r.payload["document_id"] for r in scroll_all(client, chunk_collection(Category.ARTICLES),
                                                              payload=["document_id"])}
    assert demo_articles[1].id not in left and demo_articles[0].id in left


FOOTER = "Whenever you're ready, here is how I can help you: my free seven-lesson course."


def newsletter(author, number: int, footer: bool) -> ArticleDocument:
    body = (f"Issue {number} opens on its own thought, number {number}, said once and never again.\n\n"
            "```\nprint('code repeats and stays')\n```\n\n"
            f"A second paragraph that only issue {number} has." + (f"\n\n{FOOTER}" if footer else ""))
    return article(author, f"issue-{number}", f"Issue {number}", body)


def test_lines_repeated_across_an_authors_documents_are_removed_and_counted(warehouse, store, chunker, embedder,
                                                                             author):
    for number in range(3):
        warehouse.upsert_document(newsletter(author, number, footer=True))
    cleaned, _ = materialize_features(warehouse, store, chunker, embedder, author)
    assert cleaned.total("lines_removed") == 0  # three documents: too few to call anything repeated

    for number in range(3, 6):
        warehouse.upsert_document(newsletter(author, number, footer=number < 4))
    cleaned, _ = materialize_features(warehouse, store, chunker, embedder, author)
    # Four of six now share the footer: it leaves all four, the three stored ones are cleaned again.
    assert cleaned.total("lines_removed") == 4 and cleaned.total("updated") == 3 and cleaned.total("added") == 3
    assert cleaned.repeated_lines == {FOOTER: 4}
    with store.read() as client:
        documents = [r.payload for r in scroll_all(client, "cleaned_articles")]
    assert len(documents) == 6 and not [d for d in documents if "how I can help you" in d["content"]]
    assert all("print('code repeats and stays')" in d["content"] and "said once" in d["content"] for d in documents)
    assert sorted(d["removed_lines"] for d in documents) == [0, 0, 1, 1, 1, 1]

    cleaned, _ = materialize_features(warehouse, store, chunker, embedder, author)
    assert cleaned.total("unchanged") == 6 and cleaned.total("lines_removed") == 0


def test_a_failed_write_publishes_nothing(warehouse, store, chunker, embedder, author, demo_articles):
    materialize_features(warehouse, store, chunker, embedder, author)
    before = store.published_at()
    with pytest.raises(RuntimeError, match="killed"):
        with store.write() as client:
            client.delete_collection(chunk_collection(Category.ARTICLES))
            raise RuntimeError("killed midway")
    assert store.published_at() == before
    with store.read() as client:
        assert client.count(chunk_collection(Category.ARTICLES)).count > 0


def test_bad_documents_are_skipped_with_a_reason_and_the_rest_is_stored(warehouse, store, chunker, embedder, author):
    documents = [
        article(author, "empty", "Empty", "Share this post\n\nSubscribe\n\n"),
        article(author, "german", "Über Sprachmodelle",
                "Große Sprachmodelle schreiben Texte. Sie lernen aus Beispielen, nicht aus Regeln."),
        PostDocument.create(link="https://www.linkedin.com/posts/ada-1", author=author, platform="linkedin",
                            content=PostContent(body="Shipping beats polishing. " * 200)),
        RepositoryDocument.create(link="https://github.com/ada/tool", author=author, platform="github",
                                  content=RepositoryContent(name="tool", files=[
                                      RepositoryFile(path="blob.bin", text="\x00\x01\ufffd\ufffd" * 200),
                                      RepositoryFile(path="tool.py", text="def run():\n    return 42\n")])),
    ]
    for document in documents:
        warehouse.upsert_document(document)
    cleaned, chunks = materialize_features(warehouse, store, chunker, embedder, author)
    assert [link for link, _ in cleaned.skipped] == [documents[0].link]
    assert chunks.stored[Category.ARTICLES] >= 1 and chunks.stored[Category.POSTS] > 1
    with store.read() as client:
        [code] = scroll_all(client, chunk_collection(Category.REPOSITORIES), payload=True)
        posts = scroll_all(client, chunk_collection(Category.POSTS), payload=["token_count"])
    assert code.payload["path"] == "tool.py" and code.payload["content"] == "def run():\n    return 42"
    assert max(p.payload["token_count"] for p in posts) <= ChunkingConfig().post_tokens


def test_search_finds_the_article_a_question_is_about(warehouse, store, chunker, embedder, author, demo_articles):
    materialize_features(warehouse, store, chunker, embedder, author)
    with store.read() as client:
        hits = search_chunks(client, embedder, "how big should chunks be for retrieval?", k=3, author_id=author.id)
        none = search_chunks(client, embedder, "anything", author_id="nobody")
    assert hits[0]["link"].endswith("chunking-is-a-product-decision")
    assert set(hits[0]) >= {"score", "link", "author", "category", "content"} and hits[0]["author"] == "Ada Quill"
    assert none == []


def test_fastembed_onnx_and_sentence_transformers_give_the_same_vectors(embedder):
    texts = ["Evaluation sets are assets.", "Quantization trades a little accuracy for a lot of speed."]
    reference = Embedder(home=embedder.home, backend="sentence-transformers", precision="fp32").embed(texts)
    onnx = Embedder(home=embedder.home, backend="fastembed", precision="fp32").embed(texts)
    int8 = Embedder(home=embedder.home, backend="fastembed", precision="int8").embed(texts)
    fast = embedder.embed(texts)
    assert np.allclose(onnx, reference, atol=1e-4)
    assert (int8 * reference).sum(axis=1).min() > 0.97
    assert (fast * reference).sum(axis=1).min() > 0.97  # what `auto` measured to be fastest and close enough
    with pytest.raises(ValueError, match="backend must be one of"):
        Embedder(home=embedder.home, backend="nope").embed(texts)


def test_slices_embedded_in_length_order_come_back_in_the_order_given(embedder, monkeypatch):
    from twin_assets.features import pipeline

    monkeypatch.setattr(pipeline, "EMBED_SLICE", 2)
    texts = ["a much longer text about evaluation sets and what goes in a row of one", "short", "medium text here",
             "x", "another fairly long sentence about quantization and memory bandwidth"]
    vectors = pipeline.embed_with_progress(embedder, texts, ProgressReporter(), "test")
    # row i is text i's vector (int8's dynamic quantization moves a vector slightly with its batch's company)
    similarity = vectors @ embedder.embed(texts).T
    assert list(similarity.argmax(axis=1)) == list(range(len(texts))) and similarity.diagonal().min() > 0.97


def test_auto_is_the_fastest_backend_within_the_quality_floor_measured_once_per_machine(embedder, tmp_path,
                                                                                      monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # where platformdirs puts the user's cache
    texts = sample_texts(24)
    assert len(texts) == 24 and all(len(t) > 80 for t in texts)

    def make(backend, precision):
        return Embedder(home=embedder.home, backend=backend, precision=precision).embed

    fallback = Calibration("fastembed", "fp32", "by rule")
    choice = load_or_calibrate(embedder.files, make, fallback, log=lambda message: None, texts=texts)
    measured = {name: f for name, f in choice.figures.items() if "texts_per_s" in f}
    assert len(measured) >= 2 and measured["sentence-transformers/fp32"]["mean_cosine_to_fp32"] > 0.9999
    passing = {name: f["texts_per_s"] for name, f in measured.items() if f["mean_cosine_to_fp32"] >= QUALITY_FLOOR}
    assert f"{choice.backend}/{choice.precision}" == max(passing, key=passing.get)
    assert cache_file(embedder.files).is_relative_to(tmp_path / "cache")
    # cached: asked again, nothing is measured (a factory that fails would show it)
    again = load_or_calibrate(embedder.files, lambda *_: 1 / 0, fallback, texts=texts)
    assert (again.backend, again.precision, again.figures) == (choice.backend, choice.precision, choice.figures)


# The Dagster assets


def test_assets_write_metadata_and_pass_their_checks(warehouse, store, embedder, author, demo_articles, instance):
    instance.add_dynamic_partitions("authors", [author.key])
    result = dg.materialize(
        [cleaned_documents, embedded_chunks], partition_key=author.key, instance=instance,
        resources={"warehouse": warehouse, "vector_store": store, "embedder": embedder, "progress": ProgressReporter()})
    assert result.success
    checks = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert len(checks) == 7 and all(check.passed for check in checks)
    [_, chunks] = [e.step_materialization_data.materialization.metadata for e in result.get_asset_materialization_events()]
    assert chunks["stored"].value == chunks["new"].value > 0 and chunks["articles_chunks"].value == chunks["stored"].value
    assert chunks["tokens_per_second"].value > 0 and "nothing_to_do" not in chunks


def data_versions(result) -> dict[str, str]:
    return {e.asset_key.path[-1]: e.step_materialization_data.materialization.tags["dagster/data_version"]
            for e in result.get_asset_materialization_events()}


def test_a_run_that_changes_nothing_keeps_the_data_versions_and_says_so(warehouse, store, embedder, author,
                                                                         demo_articles, instance):
    instance.add_dynamic_partitions("authors", [author.key])
    resources = {"warehouse": warehouse, "vector_store": store, "embedder": embedder, "progress": ProgressReporter()}
    first = dg.materialize([cleaned_documents, embedded_chunks], partition_key=author.key, instance=instance,
                           resources=resources)
    again = dg.materialize([cleaned_documents, embedded_chunks], partition_key=author.key, instance=instance,
                           resources=resources)
    assert data_versions(again) == data_versions(first)  # nothing downstream is marked stale
    [_, chunks] = [e.step_materialization_data.materialization.metadata for e in again.get_asset_materialization_events()]
    assert "nothing_to_do" in chunks and "tokens_per_second" not in chunks and "seconds" not in chunks

    changed = demo_articles[0].model_copy(deep=True)
    changed.content.body += "\n\nA new closing paragraph about evaluation budgets."
    changed.content_hash = "changed"
    warehouse.upsert_document(changed)
    edited = dg.materialize([cleaned_documents, embedded_chunks], partition_key=author.key, instance=instance,
                            resources=resources)
    assert all(data_versions(edited)[key] != version for key, version in data_versions(first).items())


def test_new_raw_documents_trigger_the_features_automatically(warehouse, store, embedder, author, instance):
    from twin_assets.definitions import build_definitions

    defs = build_definitions({"warehouse": warehouse, "vector_store": store, "embedder": embedder,
                              "model_registry": ModelRegistry(home=store.home), "http": None,
                              "progress": ProgressReporter(), "llm": LLM(),
                              "pipes_client": dg.PipesSubprocessClient(), "judge": Judge()})
    instance.add_dynamic_partitions("authors", [author.key])
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    for key in RAW_ASSETS.values():
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key, partition=author.key))
    second = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert first.total_requested == 0
    assert second.get_requested_partitions(dg.AssetKey("cleaned_documents")) == {author.key}
    assert second.get_requested_partitions(dg.AssetKey("embedded_chunks")) == {author.key}
