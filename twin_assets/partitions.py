import dagster as dg

# One partition per author, keyed by the author's slug ("ada-quill"); added when links are registered.
authors = dg.DynamicPartitionsDefinition(name="authors")
