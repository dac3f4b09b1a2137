"""Query expansion: the request said n ways, so retrieval does not hinge on the request's exact words."""


def expansion_schema(count: int) -> dict:
    return {"type": "object", "required": ["queries"], "additionalProperties": False,
            "properties": {"queries": {"type": "array", "minItems": count, "maxItems": count,
                                       "items": {"type": "string", "minLength": 3, "maxLength": 300}}}}


def expand_query(llm, query: str, n: int) -> list[str]:
    """`query` and n-1 reformulations from `llm` (an `LLM` resource); just `query` when n is 1."""
    if n <= 1:
        return [query]
    answer = llm.structured([{"role": "user", "content": (
        f"Write {n - 1} different search queries that find passages answering this request, each from a "
        f"different angle, without adding facts.\nRequest: {query}")}], expansion_schema(n - 1), temperature=0.7)
    seen, queries = {query.strip().lower()}, [query]
    for candidate in answer["queries"]:
        if candidate.strip() and candidate.strip().lower() not in seen:
            seen.add(candidate.strip().lower())
            queries.append(candidate.strip())
    return queries
