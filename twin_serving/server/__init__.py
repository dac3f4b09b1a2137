"""The serving process: LitServe workers answering with RAG, the web page, health and traces."""
