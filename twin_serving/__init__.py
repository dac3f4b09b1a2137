"""Serving the twin (LitServe, OpenAI-compatible endpoint, web page): a consumer of promoted models and the
feature store that never imports asset code. Built in a later stage."""
