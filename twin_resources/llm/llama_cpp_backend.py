"""A GGUF file through llama-cpp-python; structured output is enforced by a grammar built from the schema."""

import os
from collections.abc import Iterator
from pathlib import Path

from twin_resources.llm.base import Completion, LLMError, Message, Sampling


class LlamaCppBackend:
    enforces_json_schema = True

    def __init__(self, path: Path, model: str = "", context_length: int = 4096, threads: int = 0):
        if not path.is_file():
            raise LLMError(f"GGUF file {path} does not exist")
        from llama_cpp import Llama

        try:
            self.llama = Llama(model_path=str(path), n_ctx=context_length, n_threads=threads or os.cpu_count(),
                               n_gpu_layers=-1, verbose=False)
        except (ValueError, RuntimeError) as error:
            raise LLMError(f"cannot load GGUF file {path}: {error}") from None
        self.model = model or str(path)
        # The model's own training context bounds what it can read, whatever context llama.cpp allocates.
        architecture = self.llama.metadata.get("general.architecture", "")
        trained = int(self.llama.metadata.get(f"{architecture}.context_length", 0) or 0)
        self.context_window = min(self.llama.n_ctx(), trained) if trained else self.llama.n_ctx()

    def count_tokens(self, text: str) -> int:
        return len(self.llama.tokenize(text.encode(), add_bos=False, special=True))

    def _call(self, create, **arguments):
        try:
            return create(**arguments)
        except ValueError as error:  # the prompt exceeds the context, a bad grammar
            raise LLMError(f"llama.cpp refused the request: {error}") from None

    @staticmethod
    def _sampling(sampling: Sampling) -> dict:
        return dict(max_tokens=sampling.max_tokens, temperature=sampling.temperature, stop=list(sampling.stop))

    def chat(self, messages: list[Message], sampling: Sampling, json_schema: dict | None = None) -> Completion:
        response_format = {"type": "json_object", "schema": json_schema} if json_schema else None
        result = self._call(self.llama.create_chat_completion, messages=messages, response_format=response_format,
                            **self._sampling(sampling))
        return _completion(result, result["choices"][0]["message"]["content"] or "", self.model)

    def complete(self, prompt: str, sampling: Sampling) -> Completion:
        result = self._call(self.llama.create_completion, prompt=prompt, **self._sampling(sampling))
        return _completion(result, result["choices"][0]["text"], self.model)

    def stream(self, messages: list[Message], sampling: Sampling) -> Iterator[str]:
        chunks = self._call(self.llama.create_chat_completion, messages=messages, stream=True,
                            **self._sampling(sampling))
        self.streamed_tokens = None
        generated = 0
        for chunk in chunks:  # llama.cpp streams one chunk per generated token
            text = chunk["choices"][0]["delta"].get("content")
            if text is not None:
                generated += 1
            if text:
                yield text
        self.streamed_tokens = [generated]

    def close(self) -> None:
        self.llama.close()


def _completion(result: dict, text: str, model: str) -> Completion:
    usage = result.get("usage") or {}
    return Completion(text=text, model=model, prompt_tokens=usage.get("prompt_tokens", 0),
                      completion_tokens=usage.get("completion_tokens", 0),
                      finish_reason=result["choices"][0].get("finish_reason") or "stop")
