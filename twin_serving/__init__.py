"""Serving the twin: a consumer of promoted models and the feature store that never imports asset code.
`retrieval/` is the retrieval half (usable without a server); the LitServe server comes next."""
