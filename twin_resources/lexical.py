"""The lexical half of hybrid search: BM25 term weights of a text as a sparse vector, through fastembed's
`Bm25` (Snowball stemming, stopwords, hashed terms). Qdrant applies the inverse document frequency at search
time (the `IDF` modifier), so stored weights never go stale as the collection grows.

fastembed would fetch its stopword lists from the model hub; we give it scikit-learn's English list instead,
so nothing is downloaded, on a laptop or in a pod alike.
"""

import tempfile
from functools import cached_property

import numpy as np

LEXICAL_VERSION = "bm25-en-1"  # changes when the terms a text gives change: stored vectors are rebuilt


class LexicalEncoder:
    @cached_property
    def _model(self):
        from fastembed.sparse.bm25 import Bm25
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

        # the stopwords are given inline: the folder stands in for the hub's files and stays empty
        return Bm25("Qdrant/bm25", specific_model_path=tempfile.gettempdir(), stopwords=set(ENGLISH_STOP_WORDS))

    def documents(self, texts: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """(term indices, BM25 term weights) per text."""
        return [(e.indices, e.values) for e in self._model.embed(texts)]

    def query(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(term indices, weight 1 each): the query's distinct terms."""
        [encoded] = self._model.query_embed(text)
        return encoded.indices, encoded.values
