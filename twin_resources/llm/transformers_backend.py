"""A local model directory through transformers: the base model and, later, the fine-tuned ones."""

import threading
from collections.abc import Iterator
from pathlib import Path

import torch

from twin_resources.llm.base import Completion, LLMError, Message, Sampling
from twin_resources.settings import quiet_transformers

# For base models that ship without a chat template (many hub base models).
FALLBACK_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)


def _require_model_directory(directory: Path) -> None:
    if not directory.is_dir():
        raise LLMError(f"model directory {directory} does not exist")
    if not (directory / "config.json").is_file():
        raise LLMError(f"{directory} is not a model directory: it has no config.json")


class TransformersBackend:
    enforces_json_schema = False

    def __init__(self, directory: Path, model: str = ""):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        _require_model_directory(directory)
        quiet_transformers()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(directory)
            self.network = AutoModelForCausalLM.from_pretrained(
                directory, dtype="auto", device_map="auto" if torch.cuda.is_available() else None)
        except (OSError, ValueError, RuntimeError) as error:
            raise LLMError(f"cannot load the model in {directory}: {error}") from None
        self.network.eval()
        self.model = model or str(directory)
        if self.tokenizer.chat_template is None:
            self.tokenizer.chat_template = FALLBACK_TEMPLATE
        self.context_window = getattr(self.network.config, "max_position_embeddings", None)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def count_chat_tokens(self, messages: list[Message]) -> int:
        """Exactly what `chat` and `stream` will feed the model, template included."""
        return len(self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                      return_dict=True)["input_ids"])

    def _encode_chat(self, messages: list[Message]) -> dict:
        encoded = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True,
                                                     return_tensors="pt")
        return {k: v.to(self.network.device) for k, v in encoded.items()}

    def _encode_text(self, prompt: str) -> dict:
        return {k: v.to(self.network.device) for k, v in self.tokenizer(prompt, return_tensors="pt").items()}

    def _generation_arguments(self, inputs: dict, sampling: Sampling) -> dict:
        arguments = dict(**inputs, max_new_tokens=sampling.max_tokens, pad_token_id=self.tokenizer.pad_token_id
                         or self.tokenizer.eos_token_id)
        if sampling.temperature > 0:
            arguments.update(do_sample=True, temperature=sampling.temperature)
        else:
            arguments.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if sampling.stop:
            arguments.update(stop_strings=list(sampling.stop), tokenizer=self.tokenizer)
        return arguments

    def _run(self, inputs: dict, sampling: Sampling) -> Completion:
        prompt_length = inputs["input_ids"].shape[1]
        self._check_context(prompt_length, sampling)
        with torch.inference_mode():
            output = self.network.generate(**self._generation_arguments(inputs, sampling))
        new_tokens = output[0][prompt_length:]
        text = _cut_at_stop(self.tokenizer.decode(new_tokens, skip_special_tokens=True), sampling.stop)
        finish = "length" if len(new_tokens) >= sampling.max_tokens else "stop"
        return Completion(text=text, model=self.model, prompt_tokens=prompt_length,
                          completion_tokens=len(new_tokens), finish_reason=finish)

    def _check_context(self, prompt_length: int, sampling: Sampling) -> None:
        limit = getattr(self.network.config, "max_position_embeddings", None)
        if limit and prompt_length + sampling.max_tokens > limit:
            raise LLMError(f"the prompt ({prompt_length} tokens) plus {sampling.max_tokens} new tokens exceeds "
                           f"the model's context of {limit} tokens")

    def chat(self, messages: list[Message], sampling: Sampling, json_schema: dict | None = None) -> Completion:
        return self._run(self._encode_chat(messages), sampling)

    def complete(self, prompt: str, sampling: Sampling) -> Completion:
        return self._run(self._encode_text(prompt), sampling)

    def stream(self, messages: list[Message], sampling: Sampling) -> Iterator[str]:
        from transformers import TextIteratorStreamer

        inputs = self._encode_chat(messages)
        self._check_context(inputs["input_ids"].shape[1], sampling)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        yield from self._generate_into(streamer, inputs, sampling)

    def stream_batch(self, conversations: list[list[Message]], sampling: Sampling) -> Iterator[list[str]]:
        """Several conversations decoded together: each step yields every conversation's new text ("" once
        it has finished). One forward pass serves the whole batch, which is what batching buys."""
        from twin_resources.llm.batch_streamer import BatchStreamer

        texts = [self.tokenizer.apply_chat_template(m, add_generation_prompt=True, tokenize=False)
                 for m in conversations]
        padding_side = self.tokenizer.padding_side
        self.tokenizer.padding_side = "left"  # generation continues every row from its last real token
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        try:
            inputs = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        finally:
            self.tokenizer.padding_side = padding_side
        inputs = {k: v.to(self.network.device) for k, v in inputs.items()}
        self._check_context(inputs["input_ids"].shape[1], sampling)
        yield from self._generate_into(BatchStreamer(self.tokenizer, len(conversations)), inputs, sampling)

    def _generate_into(self, streamer, inputs: dict, sampling: Sampling) -> Iterator:
        """`generate` in a thread, feeding `streamer`, which this yields from; a failure in the thread is
        raised here, never lost."""
        failure: list[BaseException] = []

        def generate():
            try:
                with torch.inference_mode():
                    output = self.network.generate(**self._generation_arguments(inputs, sampling), streamer=streamer)
                self.streamed_tokens = self._generated_counts(output[:, inputs["input_ids"].shape[1]:])
            except BaseException as error:
                failure.append(error)
                streamer.end()

        self.streamed_tokens = None
        worker = threading.Thread(target=generate, daemon=True)
        worker.start()
        yield from streamer
        worker.join()
        if failure:
            raise LLMError(f"generation failed: {failure[0]}") from failure[0]

    def _generated_counts(self, new_tokens) -> list[int]:
        """Tokens generated per row: a row that finished early is padded to the batch's length."""
        pad = self.tokenizer.pad_token_id
        if pad is None or pad == self.tokenizer.eos_token_id:
            return [int(row.shape[0]) for row in new_tokens]
        return [int((row != pad).sum()) for row in new_tokens]

    def close(self) -> None:
        pass


def _cut_at_stop(text: str, stop: tuple[str, ...]) -> str:
    cuts = [text.find(s) for s in stop if s and s in text]
    return text[: min(cuts)] if cuts else text
