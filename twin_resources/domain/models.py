"""Model versions in the registry, and promotions: which version each twin answers with."""

from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, Field

DEFAULT_CHANNEL = "default"  # authors without a model of their own are answered from this channel
FROM_SCRATCH = "trained from scratch"  # a base model's `source` when it was trained here, not configured


class RegistryError(RuntimeError):
    """A registry operation that cannot be done: an unknown or incomplete version, nothing to roll back to."""


class ModelVersion(BaseModel):
    version: str
    name: str
    kind: str  # base, sft, dpo, gguf, exl2, reranker
    format: str  # transformers, peft, gguf, exl2, sentence-transformers
    created_at: datetime
    parents: list[str] = Field(default_factory=list)  # versions this one was made from
    dataset: str | None = None  # the dataset version it was trained on
    recipe: str = ""  # hash of everything that produced it, so a re-run can reuse it
    also_made_by: list[str] = Field(default_factory=list)  # later recipes that produced the same files
    files: dict[str, int] = Field(default_factory=dict)  # relative path -> bytes
    metadata: dict = Field(default_factory=dict)
    path: Path = Path()  # where its files are (set when read)

    @property
    def short(self) -> str:
        return self.version[:12]

    @property
    def from_scratch(self) -> bool:
        """True for the small offline model trained here: it shows the plumbing, not a real voice."""
        return self.metadata.get("source") == FROM_SCRATCH

    def file(self, suffix: str = "") -> Path:
        """The first file ending in `suffix` (a GGUF file); the directory itself when `suffix` is empty."""
        if not suffix:
            return self.path
        for name in sorted(self.files):
            if name.endswith(suffix):
                return self.path / name
        raise RegistryError(f"model {self.short} has no *{suffix} file")


class Promotion(BaseModel):
    version: str
    at: datetime
    reason: str
    previous: str | None = None
    channel: str = DEFAULT_CHANNEL
