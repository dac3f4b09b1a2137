"""What search returns: typed passages and hits, and the sources an answer cites."""

from dataclasses import asdict, dataclass

from twin_resources.domain.documents import Category

PASSAGE_FIELDS = ("document_id", "author_id", "author_name", "category", "link", "title", "chunk_index", "content")


@dataclass(frozen=True)
class Passage:
    """One chunk as search sees it: the author's text and where it comes from."""

    document_id: str
    author_id: str
    author_name: str
    category: Category
    link: str
    title: str
    chunk_index: int
    content: str

    @classmethod
    def from_payload(cls, payload: dict) -> "Passage":
        values = {name: payload[name] for name in PASSAGE_FIELDS}
        values["category"] = Category(values["category"])
        return cls(**values)


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    passage: Passage

    def rescored(self, score: float) -> "Hit":
        return Hit(self.id, score, self.passage)

    def as_dict(self) -> dict:
        p = self.passage
        return {"score": round(self.score, 4), "link": p.link, "author": p.author_name,
                "category": p.category.value, "title": p.title, "chunk_index": p.chunk_index,
                "content": p.content}


@dataclass(frozen=True)
class Source:
    """A passage an answer may cite as [number]."""

    number: int
    link: str
    title: str
    author: str
    score: float

    def as_dict(self) -> dict:
        return asdict(self)
