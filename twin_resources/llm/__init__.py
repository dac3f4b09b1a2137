"""Language models behind one interface: `generate`, `chat`, streaming and structured output."""

from twin_resources.llm.base import Completion, LLMError, Message, Sampling, StructuredOutputError
from twin_resources.llm.resource import LLM

__all__ = ["LLM", "Completion", "LLMError", "Message", "Sampling", "StructuredOutputError"]
