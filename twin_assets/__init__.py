"""The LLM Twin asset graph: one module per stage, merged in `twin_assets.definitions`."""
