"""Texts as sets of word n-grams, and their MinHash signatures: what near-duplicate search compares."""

import re

from datasketch import MinHash

WORD = re.compile(r"\w+")
NUM_PERM = 128
SHINGLE_WORDS = 5  # near-duplicates are compared on word 5-grams


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def word_ngrams(text: str, n: int) -> set[str]:
    """The text's n-word sequences (a text shorter than n: itself, once)."""
    found = words(text)
    return {" ".join(found[i:i + n]) for i in range(max(len(found) - n + 1, 1))}


def minhash(shingles: set[str]) -> MinHash:
    signature = MinHash(num_perm=NUM_PERM, seed=1)
    signature.update_batch([shingle.encode() for shingle in shingles])
    return signature
