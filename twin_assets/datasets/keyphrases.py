"""The key phrases of an extract (YAKE: statistical, unsupervised, no model to load), for requests built
from the author's own words."""

import re
from functools import lru_cache

import yake

MAX_WORDS = 3
# YAKE scores phrases that start or end on a number, a link or a symbol as well as words; a request reads
# badly with them.
WORDY = re.compile(r"^[A-Za-z][\w'’-]*( [\w'’-]+)*$")


@lru_cache(maxsize=4)
def _extractor(top: int) -> yake.KeywordExtractor:
    return yake.KeywordExtractor(lan="en", n=MAX_WORDS, dedup_lim=0.7, top=top * 4)


def key_phrases(text: str, top: int = 3) -> list[str]:
    """Up to `top` key phrases, most characteristic first, none contained in another."""
    candidates = [" ".join(phrase.split()) for phrase, _score in _extractor(top).extract_keywords(text)]
    candidates = [phrase for phrase in candidates if WORDY.match(phrase)]
    # phrases of several words name a topic; single words only when there are too few of those
    candidates.sort(key=lambda phrase: " " not in phrase)
    chosen: list[str] = []
    for phrase in candidates:
        if any(phrase.lower() in c.lower() or c.lower() in phrase.lower() for c in chosen):
            continue
        chosen.append(phrase)
        if len(chosen) == top:
            break
    return chosen
