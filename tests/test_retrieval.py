"""Retrieval over a real embedded store with the real embedding model: self-query, filtered search,
expansion's fallback, reranking with a reranker fine-tuned here, the prompt, bad input and the CLI."""

import json
import os
import subprocess
import sys

import dagster as dg
import numpy as np
import pytest
from qdrant_client.models import SparseVector

from tests.test_features import CORPUS, article, read_article
from twin_assets.features.chunking import Chunker, ChunkingConfig
from twin_assets.features.pipeline import sync_cleaned_documents, sync_embedded_chunks
from twin_assets.retrieval.assets import reranker_model
from twin_resources import LLM, ModelRegistry, VectorStore
from twin_resources.chunk_index import ChunkIndex
from twin_resources.domain.documents import Category, UserDocument
from twin_resources.feature_store import DENSE, LEXICAL
from twin_resources.lexical import LexicalEncoder
from twin_resources.vector_store import field_filter, scroll_all
from twin_serving.retrieval.rerank import Reranker
from twin_serving.retrieval.retriever import RetrievalSettings, Retriever
from twin_serving.retrieval.self_query import match_author, match_category

BO = UserDocument.from_full_name("Bo Li")


@pytest.fixture
def store(warehouse, author, embedder, twin_home) -> VectorStore:
    """Ada wrote the demo articles; Bo Li wrote one article about gardening."""
    for path in sorted(CORPUS.glob("*.md")):
        warehouse.upsert_document(article(author, path.stem, *read_article(path)))
    warehouse.upsert_user(BO)
    warehouse.upsert_document(article(BO, "tomatoes", "Growing tomatoes on a balcony", (
        "Tomatoes want six hours of sun, a deep pot and water every morning in July. "
        "Pinch the side shoots so the plant puts its energy into fruit. ") * 6))
    store = VectorStore(home=str(twin_home))
    chunker = Chunker(embedder.tokenizer, embedder.max_tokens, ChunkingConfig(article_tokens=128))
    for user in (author, BO):
        with store.write() as client:
            sync_cleaned_documents(warehouse, client, user)
            sync_embedded_chunks(client, embedder, chunker, user)
    return store


@pytest.fixture
def client(store):
    with store.read() as snapshot:
        yield snapshot


def retriever(client, embedder, warehouse, **kwargs):
    return Retriever(embedder, ChunkIndex(client), list(warehouse.users()), **kwargs)


def test_the_in_memory_index_ranks_exactly_like_qdrants_filtered_search(store, embedder, author):
    query = embedder.embed(["how should I pick the size of chunks?"])[0]
    with store.read() as client:
        index = ChunkIndex(client)
        ours = index.search(query, Category.ARTICLES, 5, author.id)
        theirs = client.query_points("embedded_articles", query=query.tolist(), using=DENSE, limit=5,
                                     query_filter=field_filter(author_id=author.id)).points
    assert [h.id for h in ours] == [str(p.id) for p in theirs]
    assert np.allclose([h.score for h in ours], [p.score for p in theirs], atol=1e-5)
    assert index.search(query, Category.ARTICLES, 5, "no-such-author") == []


def test_self_query_finds_names_and_categories():
    ada, ada_b = UserDocument.from_full_name("Ada Quill"), UserDocument.from_full_name("Ada Byron")
    assert match_author("a LinkedIn post in Bo Li's voice", [ada, BO]) == BO
    assert match_author("something Quill would write", [ada, BO]) == ada
    assert match_author("a post in Quill's voice", [ada, BO]) == ada
    assert match_author("something Ada would write", [ada, ada_b, BO]) is None  # ambiguous first name
    assert match_author("Ada Byron on engines", [ada, ada_b]) == ada_b
    # a category narrows the search only when the request points into a kind of source
    assert match_category("what did I say in my repositories about retries?") is Category.REPOSITORIES
    assert match_category("summarize Bo Li's LinkedIn posts on soil") is Category.POSTS
    assert match_category("based on her blog posts, explain chunking") is Category.ARTICLES
    assert match_category("in his articles, how are evals run?") is Category.ARTICLES
    # the kind of text to write is no source
    assert match_category("write a LinkedIn post about RAG") is None
    assert match_category("a post in Quill's voice about latency budgets") is None
    assert match_category("what do you think?") is None


def test_a_request_naming_an_author_gets_only_their_passages_with_sources(client, embedder, warehouse, author):
    result = retriever(client, embedder, warehouse).retrieve("write an article about tomatoes in Ada Quill's voice")
    assert result.author == author and result.category is None  # "an article" is what to write, not where
    assert result.hits and all(h.passage.author_id == author.id for h in result.hits)
    assert [s.number for s in result.sources] == list(range(1, len(result.hits) + 1))
    assert "[1]" in result.messages[0]["content"] and "Ada Quill" in result.messages[0]["content"]
    assert [s.name for s in result.spans] == ["self_query", "expansion", "search", "rerank", "prompt"]

    anyone = retriever(client, embedder, warehouse).retrieve("how do I grow tomatoes on a balcony?")
    assert anyone.author is None and anyone.hits[0].passage.author_id == BO.id


def test_bad_requests_get_a_reason_not_a_trace(client, embedder, warehouse, author):
    twin = retriever(client, embedder, warehouse)
    assert twin.retrieve("   ").reason == "the request is empty"
    assert "no author named 'Nobody'" in twin.retrieve("evals", author_name="Nobody").reason
    warehouse.upsert_user(UserDocument.from_full_name("Cy Empty"))
    empty = retriever(client, embedder, warehouse).retrieve("anything by Cy Empty at all")
    assert empty.hits == [] and "no embedded passages for Cy Empty" in empty.reason
    long_request = "Write about evaluation sets and why they matter. " * 200
    assert twin.retrieve(long_request).hits  # cut to the model's 256 tokens, not refused
    assert twin.retrieve("¿Cómo elijo el tamaño de los fragmentos?").hits  # another language still searches


def test_expansion_falls_back_to_the_request_when_the_model_fails(client, embedder, warehouse):
    unreachable = LLM(backend="openai", base_url="http://127.0.0.1:9/v1", model="x", timeout_s=1)
    twin = retriever(client, embedder, warehouse, llm=unreachable, settings=RetrievalSettings(expansions=3))
    result = twin.retrieve("how do you chunk documents?")
    assert result.queries == ["how do you chunk documents?"] and result.hits
    assert "cannot reach" in next(s for s in result.spans if s.name == "expansion").detail["error"]


def test_the_reranker_asset_fine_tunes_a_cross_encoder_that_reranks(store, client, embedder, warehouse, instance, twin_home):
    models = ModelRegistry(home=str(twin_home))
    result = dg.materialize([reranker_model], instance=instance,
                            resources={"vector_store": store, "embedder": embedder, "model_registry": models},
                            run_config={"ops": {"reranker_model": {"config": {"max_pairs": 24, "batch_size": 8}}}})
    assert result.success
    version = result.asset_materializations_for_node("reranker_model")[0].metadata["version"].value
    entry = models.registry.get(version)
    assert entry is not None and entry.metadata["pairs"] > 24

    twin = retriever(client, embedder, warehouse, reranker=Reranker(entry.path))
    reranked = twin.retrieve("how do I grow tomatoes on a balcony?", k=3)
    assert len(reranked.hits) == 3 and reranked.hits[0].passage.author_id == BO.id
    assert next(s for s in reranked.spans if s.name == "rerank").detail["model"] == str(entry.path)


def test_twin_retrieve_prints_json_passages(store, twin_home):
    environment = {**os.environ, "TWIN_HOME": str(twin_home)}
    run = subprocess.run([sys.executable, "-m", "twin_assets.cli", "retrieve", "a blog article by Bo Li on tomatoes",
                          "--k", "2", "--per-document", "2", "--json"], capture_output=True, text=True, env=environment)
    assert run.returncode == 0, run.stderr
    passages = json.loads(run.stdout)
    assert len(passages) == 2 and {"score", "link", "author", "category", "content"} <= set(passages[0])
    assert {p["author"] for p in passages} == {"Bo Li"}
    unknown = subprocess.run([sys.executable, "-m", "twin_assets.cli", "retrieve", "evals", "--author", "Nobody"],
                             capture_output=True, text=True, env=environment)
    # found nothing to do its job with: a non-zero exit with the reason, as every command does
    assert unknown.returncode == 1 and "no passages: no author named 'Nobody'" in unknown.stderr


def test_the_in_memory_lexical_index_scores_exactly_like_qdrants_bm25_with_idf(client, author):
    lexical = LexicalEncoder()
    terms = lexical.query("stream the answer before the tail latency")
    index = ChunkIndex(client)
    ours = index.lexical_search(terms, Category.ARTICLES, 8, author.id)
    theirs = client.query_points("embedded_articles", query=SparseVector(indices=terms[0].tolist(),
                                 values=terms[1].tolist()), using=LEXICAL, limit=8,
                                 query_filter=field_filter(author_id=author.id)).points
    assert ours and np.allclose([h.score for h in ours], [p.score for p in theirs], atol=1e-4)
    assert {h.id for h in ours if h.score > ours[-1].score} <= {str(p.id) for p in theirs}
    assert index.lexical_search(lexical.query("zzzqqq"), Category.ARTICLES, 8, author.id) == []


def test_a_server_is_searched_through_qdrants_own_query_api_with_the_same_results(client, embedder, warehouse):
    """The server path (Qdrant filters and scores) run against the embedded store: the same passages."""
    in_memory = retriever(client, embedder, warehouse)
    through_qdrant = retriever(client, embedder, warehouse)
    through_qdrant.index.embedded = False
    for request in ("how do I grow tomatoes on a balcony?", "latency budgets in Ada Quill's voice"):
        assert [h.id for h in through_qdrant.retrieve(request).hits] == [h.id for h in in_memory.retrieve(request).hits]


def test_chunks_are_searched_with_their_title_and_heading_but_quote_the_authors_words(client, embedder, warehouse,
                                                                                      author):
    [chunk] = [r for r in scroll_all(client, "embedded_articles", field_filter(author_id=author.id))
               if "People forgive a slow answer" in r.payload["content"]]
    assert chunk.payload["title"] == "Give every stage a latency budget"
    assert chunk.payload["heading"] == "Stream the answer"
    assert "latency budget" not in chunk.payload["content"]  # the stored text is the author's alone
    # a request in the title's words alone finds that document first, with one passage of it in the five
    result = retriever(client, embedder, warehouse).retrieve("give every stage a budget, in Ada Quill's voice")
    assert result.hits[0].passage.title == "Give every stage a latency budget"
    assert len({h.passage.document_id for h in result.hits}) == len(result.hits)
    several = retriever(client, embedder, warehouse).retrieve("give every stage a budget, in Ada Quill's voice",
                                                             per_document_limit=0)
    assert len({h.passage.document_id for h in several.hits}) < len(several.hits)
    assert next(s for s in result.spans if s.name == "search").detail["hybrid"] is True


def test_a_store_embedded_before_hybrid_search_asks_for_twin_features():
    from qdrant_client import QdrantClient, models

    from twin_resources.vector_store import VectorStoreError

    old = QdrantClient(":memory:")
    old.create_collection("embedded_articles", vectors_config=models.VectorParams(size=3, distance=models.Distance.COSINE))
    payload = {"document_id": "d", "author_id": "a", "author_name": "Ada", "category": "articles", "link": "l",
               "title": "t", "chunk_index": 0, "content": "c"}
    old.upsert("embedded_articles", [models.PointStruct(id=1, vector=[1.0, 0.0, 0.0], payload=payload)])
    with pytest.raises(VectorStoreError, match="run `twin features`"):
        ChunkIndex(old).search(np.array([1.0, 0.0, 0.0]), Category.ARTICLES, 5)
