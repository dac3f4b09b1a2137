"""Any OpenAI-compatible endpoint: OpenAI, vLLM, Ollama, llama.cpp's server, our own `twin serve`."""

from collections.abc import Iterator
from contextlib import contextmanager

from twin_resources.llm.base import Completion, LLMError, Message, Sampling

# Ways to ask for JSON, most specific first: servers differ in which they accept, so the first that is
# not refused is kept. Whatever comes back is validated against the schema anyway.
_JSON_FORMATS = (
    lambda schema: {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}},  # OpenAI, vLLM
    lambda schema: {"type": "json_object", "schema": schema},  # llama-cpp-python's server
    lambda schema: None,
)


class OpenAIBackend:
    enforces_json_schema = False
    context_window = None  # the server knows; it answers 400 when a prompt does not fit

    def __init__(self, base_url: str, api_key: str, model: str, timeout_s: float):
        import openai

        self._openai = openai
        self.base_url = base_url or "https://api.openai.com/v1"
        self.client = openai.OpenAI(base_url=self.base_url, api_key=api_key or "none", timeout=timeout_s,
                                    max_retries=1)
        self.timeout_s = timeout_s
        self.model = model
        self._json_format = 0

    @staticmethod
    def count_tokens(text: str) -> int:
        return max(1, len(text) // 4)  # an estimate: the served model's tokenizer is not here

    @contextmanager
    def _errors(self):
        """The client's exceptions as one-line errors naming the endpoint."""
        openai = self._openai
        try:
            yield
        except openai.APITimeoutError:
            raise LLMError(f"{self.base_url} did not answer within {self.timeout_s:g} s") from None
        except openai.APIConnectionError as error:
            raise LLMError(f"cannot reach the model endpoint {self.base_url}: {error.__cause__ or error}") from None
        except openai.APIStatusError as error:
            raise LLMError(f"{self.base_url} answered {error.status_code}: {_reason(error)}") from None

    def _create(self, **arguments):
        with self._errors():
            return self.client.chat.completions.create(model=self.model, **arguments)

    @staticmethod
    def _sampling(sampling: Sampling) -> dict:
        return dict(max_tokens=sampling.max_tokens, temperature=sampling.temperature,
                    **({"stop": list(sampling.stop)} if sampling.stop else {}))

    def chat(self, messages: list[Message], sampling: Sampling, json_schema: dict | None = None) -> Completion:
        if json_schema is None:
            return self._completion(self._create(messages=messages, **self._sampling(sampling)))
        while True:
            tried = self._json_format
            response_format = _JSON_FORMATS[tried](json_schema)
            try:
                return self._completion(self._create(messages=messages, **self._sampling(sampling),
                                                     **({"response_format": response_format} if response_format else {})))
            except LLMError as error:
                # 400/422 from most servers; llama-cpp-python's answers 500 naming the field
                refused = any(f"answered {code}" in str(error) for code in (400, 422)) or "response_format" in str(error)
                if not refused or response_format is None:
                    raise
                # this server does not take that response_format: the next one (requests in flight together
                # learn this at once, so each moves past the format it tried, not one further)
                self._json_format = max(self._json_format, tried + 1)

    def complete(self, prompt: str, sampling: Sampling) -> Completion:
        return self.chat([{"role": "user", "content": prompt}], sampling)

    def stream(self, messages: list[Message], sampling: Sampling) -> Iterator[str]:
        chunks = self._create(messages=messages, stream=True, **self._sampling(sampling))
        with self._errors():  # the connection can also fail midway
            for chunk in chunks:
                if chunk.choices and chunk.choices[0].delta.content:
                    yield chunk.choices[0].delta.content

    def _completion(self, response) -> Completion:
        choice = response.choices[0]
        usage = response.usage
        return Completion(text=choice.message.content or "", model=response.model or self.model,
                          prompt_tokens=usage.prompt_tokens if usage else 0,
                          completion_tokens=usage.completion_tokens if usage else 0,
                          finish_reason=choice.finish_reason or "stop")

    def close(self) -> None:
        self.client.close()


def _reason(error) -> str:
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        return str(body.get("message") or body.get("detail") or body)[:300]
    return str(error.message)[:300]
