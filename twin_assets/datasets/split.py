"""Train or test, decided per document, once and for good.

A document's side comes from a stable hash of its id, so adding documents never moves old ones. Documents
that are near-duplicates of each other (one article posted on Medium and on Substack) form one group and
share a side, or the test set would hold text the model trained on. A cross-post is often shortened, so
the measure is containment (the share of the shorter document's word 5-grams found in the other), found
with datasketch's MinHash LSH Ensemble. On the Handbook export the five Medium/Substack cross-posts
contain 0.62-0.84 of each other, while unrelated articles of one author stay at or below 0.39; a short
course overview that repeats its lessons' summaries contains 0.55 of each lesson, and joins them.

A side once given is kept (the previous assignment is an input): a new document joins its group's side,
and only a document with no assigned relative gets a side from its hash.
"""

import hashlib
from collections.abc import Mapping
from typing import Literal

from datasketch import MinHashLSHEnsemble

from twin_assets.datasets.shingles import NUM_PERM, SHINGLE_WORDS, minhash, word_ngrams

Side = Literal["train", "test"]
SIDES: tuple[Side, ...] = ("train", "test")
NEAR_DUPLICATE = 0.5  # containment of word 5-grams


def side_from_hash(document_id: str, test_share: float) -> Side:
    fraction = int(hashlib.sha256(document_id.encode()).hexdigest()[:12], 16) / 16**12
    return "test" if fraction < test_share else "train"


def containment(first: set[str], second: set[str]) -> float:
    """The share of the smaller set found in the other."""
    smaller, larger = sorted((first, second), key=len)
    return len(smaller & larger) / len(smaller) if smaller else 0.0


def near_duplicate_groups(texts: Mapping[str, str], threshold: float = NEAR_DUPLICATE) -> list[list[str]]:
    """Documents joined by near-duplication (transitively), each group sorted, groups in id order."""
    shingles = {document_id: word_ngrams(text, SHINGLE_WORDS) for document_id, text in sorted(texts.items())}
    signatures = {document_id: minhash(found) for document_id, found in shingles.items()}
    ensemble = MinHashLSHEnsemble(threshold=threshold, num_perm=NUM_PERM, num_part=8)
    if signatures:
        ensemble.index([(document_id, signatures[document_id], len(shingles[document_id]))
                        for document_id in signatures])
    parent = {document_id: document_id for document_id in signatures}

    def root(node: str) -> str:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for document_id, signature in signatures.items():
        for relative in ensemble.query(signature, len(shingles[document_id])):
            if relative != document_id and containment(shingles[document_id], shingles[relative]) >= threshold:
                parent[root(relative)] = root(document_id)  # the ensemble proposes, the exact sets decide
    groups: dict[str, list[str]] = {}
    for document_id in signatures:
        groups.setdefault(root(document_id), []).append(document_id)
    return sorted((sorted(group) for group in groups.values()), key=lambda group: group[0])


def assign_sides(texts: Mapping[str, str], previous: Mapping[str, Side] | None = None,
                 test_share: float = 0.1) -> dict[str, Side]:
    """Each document's side. A group takes the side its members already had; one whose members had both
    (a new document bridging two groups) goes to train as a whole: a held-out text the model has seen
    near-copies of measures nothing."""
    previous = previous or {}
    sides: dict[str, Side] = {}
    for group in near_duplicate_groups(texts):
        known = {previous[document_id] for document_id in group if document_id in previous}
        if known:
            side: Side = known.pop() if len(known) == 1 else "train"
        else:
            side = side_from_hash(group[0], test_share)
        sides.update({document_id: side for document_id in group})
    return sides
