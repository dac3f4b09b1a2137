"""Reranking with a cross-encoder: reads query and passage together, so it judges relevance more closely
than the embedding's cosine, at the cost of one forward pass per candidate."""

from pathlib import Path

from twin_resources.domain.search import Hit
from twin_resources.settings import quiet_transformers


class Reranker:
    """A sentence-transformers `CrossEncoder` from a hub id or a local directory."""

    def __init__(self, model: str | Path, batch_size: int = 32):
        from sentence_transformers import CrossEncoder

        quiet_transformers()
        try:
            self.model = CrossEncoder(str(model), num_labels=1)
        except (OSError, ValueError) as error:
            raise ValueError(f"cannot load the reranker {model}: {error}") from None
        self.name, self.batch_size = str(model), batch_size

    def rerank(self, query: str, hits: list[Hit], k: int) -> list[Hit]:
        """The `k` best of `hits` by the cross-encoder's score (which replaces the cosine)."""
        if not hits:
            return []
        scores = self.model.predict([(query, h.passage.content) for h in hits], batch_size=self.batch_size,
                                    show_progress_bar=False)
        ranked = sorted(zip(scores, hits), key=lambda pair: -pair[0])[:k]
        return [h.rescored(float(score)) for score, h in ranked]
