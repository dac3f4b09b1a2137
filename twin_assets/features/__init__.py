"""Features: raw documents become cleaned documents and embedded chunks in the vector store."""

import dagster as dg

from twin_assets.features.assets import cleaned_documents, embedded_chunks

features_job = dg.define_asset_job("features_job", selection=dg.AssetSelection.groups("features"),
                                   description="Clean, chunk and embed one author's documents.")

defs = dg.Definitions(assets=[cleaned_documents, embedded_chunks], jobs=[features_job])
