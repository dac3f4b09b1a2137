"""The judge: a capable model behind an OpenAI-compatible endpoint that scores the evaluation's answers, as
our `LLM` (for the accuracy and style grades) and as the litellm model opik's RAG metrics call."""

import os

import dagster as dg

from twin_resources.llm import LLM


class Judge(dg.ConfigurableResource):
    """`TWIN_JUDGE_BASE_URL`, `TWIN_JUDGE_MODEL`, `TWIN_JUDGE_API_KEY`; unset: no judge, and the evaluation
    reports the metrics that need none."""

    base_url: str = ""
    model: str = ""
    api_key: str = ""
    prompts: int = 5  # test requests judged per model
    timeout_s: float = 120.0
    concurrency: int = 4

    @property
    def configured(self) -> bool:
        return bool(self.base_url and self.model)

    def llm(self) -> LLM:
        # greedy and short: a grade and a sentence or two of reasons
        return LLM(backend="openai", base_url=self.base_url, model=self.model, api_key=self.api_key or "none",
                   temperature=0.0, max_tokens=400, timeout_s=self.timeout_s, concurrency=self.concurrency)

    def metric_model(self):
        """The judge as opik's metrics call it (through litellm, which must not fetch its price list)."""
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        from opik.evaluation.models import LiteLLMChatModel

        # litellm's `openai/` provider speaks the OpenAI protocol to any base URL
        return LiteLLMChatModel(model_name=f"openai/{self.model}", api_base=self.base_url,
                                api_key=self.api_key or "none", temperature=0.0, timeout=self.timeout_s)
