"""What `twin serve` is told: flags first, then `TWIN_SERVE_*` / `TWIN_API_KEY`, then defaults."""

import os
from dataclasses import dataclass, fields


@dataclass
class ServeSettings:
    host: str = "127.0.0.1"  # another interface only when asked: the twin speaks for a person
    port: int = 8000
    api_key: str = ""  # when set, every API call needs `Authorization: Bearer <key>`
    max_body_bytes: int = 64 * 1024
    max_prompt_chars: int = 8000
    max_tokens: int = 128  # default answer length; a request may ask for up to `max_tokens_limit`
    max_tokens_limit: int = 1024
    temperature: float = 0.7
    k: int = 5
    max_batch_size: int = 1  # >1 turns LitServe's batching on: requests that arrive together decode together
    batch_timeout: float = 0.05
    workers: int = 1
    timeout_s: float = 120.0  # a request that waits longer in the queue gets 504
    dagster_url: str = ""  # a running Dagster webserver: collection is launched there through GraphQL

    @classmethod
    def from_env(cls, **overrides) -> "ServeSettings":
        values = {}
        for spec in fields(cls):
            name = "TWIN_API_KEY" if spec.name == "api_key" else f"TWIN_SERVE_{spec.name.upper()}"
            if spec.name == "dagster_url":
                name = "TWIN_DAGSTER_URL"
            if os.environ.get(name):
                values[spec.name] = type(spec.default)(os.environ[name])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
