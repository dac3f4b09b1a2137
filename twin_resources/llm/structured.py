"""JSON answers that match a schema, from any backend: constrained where the backend can, validated always."""

import json
import re
from dataclasses import replace

import jsonschema

from twin_resources.llm.base import ChatBackend, Message, Sampling, StructuredOutputError

_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


def schema_instruction(schema: dict) -> Message:
    return {"role": "system", "content": "Answer with one JSON value and nothing else. It must match this JSON "
                                         f"schema: {json.dumps(schema)}"}


def parse_against_schema(text: str, schema: dict):
    """The JSON value in `text` (a Markdown fence around it is allowed); ValueError saying what is wrong."""
    fenced = _FENCE.match(text)
    try:
        value = json.loads(fenced.group(1) if fenced else text, strict=False)  # raw newlines in strings are common
    except json.JSONDecodeError as error:
        raise ValueError(f"not JSON ({error.msg} at character {error.pos})") from None
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError as error:
        raise ValueError(f"JSON that does not match the schema ({error.message})") from None
    return value


def chat_json(backend: ChatBackend, messages: list[Message], schema: dict, sampling: Sampling, attempts: int):
    """Ask until the answer parses and validates; StructuredOutputError after `attempts` answers."""
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as error:  # the caller's mistake, not the model's: no attempts spent
        raise ValueError(f"invalid JSON schema: {error.message}") from None
    conversation = [schema_instruction(schema), *messages]
    problem, text = "", ""
    for attempt in range(attempts):
        if attempt:  # the same greedy request would give the same answer
            sampling = replace(sampling, temperature=max(sampling.temperature, 0.7))
        text = backend.chat(conversation, sampling, json_schema=schema).text
        try:
            return parse_against_schema(text, schema)
        except ValueError as error:
            problem = str(error)
    raise StructuredOutputError(f"{backend.model} gave no valid answer in {attempts} attempts; the last was "
                                f"{problem}: {text[:160]!r}")
