"""A voice score that needs no LLM: a small stylometric classifier (character n-grams, which carry
punctuation, function words and spelling habits, under a logistic regression) trained on train-side text
only: the author's own answers against other text (other authors' answers, the base model's writing). It
gives the probability that a text was written by the author."""

from dataclasses import dataclass

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline, make_pipeline


@dataclass
class VoiceModel:
    pipeline: Pipeline
    trained_on: tuple[int, int]  # the author's texts, the other texts

    def score(self, texts: list[str]) -> list[float]:
        """P(the author wrote it), per text (an empty text scores 0)."""
        if not texts:
            return []
        probabilities = self.pipeline.predict_proba([t or " " for t in texts])[:, 1]
        return [float(p) if t.strip() else 0.0 for p, t in zip(probabilities, texts)]

    def separation(self, author_texts: list[str], other_texts: list[str]) -> float | None:
        """ROC AUC between the author's held-out texts and other held-out texts: 1.0 tells them apart
        perfectly, 0.5 not at all. None without both kinds."""
        if not author_texts or not other_texts:
            return None
        scores = self.score(author_texts + other_texts)
        return float(roc_auc_score([1] * len(author_texts) + [0] * len(other_texts), scores))


def train_voice(author_texts: list[str], other_texts: list[str]) -> VoiceModel | None:
    """None when either side is empty: there is nothing to tell the author from."""
    author_texts = [t for t in author_texts if t.strip()]
    other_texts = [t for t in other_texts if t.strip()]
    if not author_texts or not other_texts:
        return None
    pipeline = make_pipeline(
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True, min_df=1, max_features=50_000),
        LogisticRegression(max_iter=2000, class_weight="balanced"))
    pipeline.fit(author_texts + other_texts, [1] * len(author_texts) + [0] * len(other_texts))
    return VoiceModel(pipeline, (len(author_texts), len(other_texts)))
