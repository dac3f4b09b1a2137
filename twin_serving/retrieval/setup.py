"""A ready `Retriever` from the configured resources: what `twin retrieve`, the benchmark and the server use."""

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from twin_resources.chunk_index import ChunkIndex
from twin_resources.embedding import Embedder
from twin_resources.settings import load_settings
from twin_serving.retrieval.rerank import Reranker
from twin_serving.retrieval.retriever import RetrievalSettings, Retriever


def configured_reranker(model: str | None = None) -> Reranker | None:
    """`TWIN_RERANKER_MODEL` (a hub id such as cross-encoder/ms-marco-MiniLM-L-6-v2, or a directory); none
    when unset or "none"."""
    model = model if model is not None else load_settings().reranker_model
    return Reranker(model) if model and model != "none" else None


def query_embedder(embedder: Embedder) -> Embedder:
    """The same model, set up for one short text at a time: ONNX Runtime has the least overhead per call
    (7 ms a query against 22 ms through PyTorch on this CPU) and its vectors match the stored ones."""
    return Embedder(model=embedder.model, backend="fastembed", precision="fp32", home=embedder.home,
                    threads=embedder.threads)


@contextmanager
def open_retriever(resources: dict, settings: RetrievalSettings | None = None, use_llm: bool = False,
                   reranker: Reranker | None = None) -> Iterator[Retriever]:
    """A retriever over a snapshot of the vector store, the warehouse's authors and (optionally) the LLM."""
    with ExitStack() as stack:
        warehouse = stack.enter_context(resources["warehouse"].process_config_and_initialize_cm())
        store = stack.enter_context(resources["vector_store"].process_config_and_initialize_cm())
        embedder = stack.enter_context(resources["embedder"].process_config_and_initialize_cm())
        llm = stack.enter_context(resources["llm"].process_config_and_initialize_cm()) if use_llm else None
        client = stack.enter_context(store.read())
        yield Retriever(query_embedder(embedder), ChunkIndex(client), list(warehouse.users()), llm, reranker,
                        settings)
