"""Features: raw documents become cleaned documents and embedded chunks in the vector store."""

import dagster as dg

from twin_assets.features.assets import cleaned_documents, embedded_chunks

features_job = dg.define_asset_job("features_job", selection=dg.AssetSelection.groups("features"),
                                   description="Clean, chunk and embed one author's documents.")

# On from the start: new raw documents (a crawl, an import) flow into the feature store by themselves.
features_automation = dg.AutomationConditionSensorDefinition(
    "features_automation", target=dg.AssetSelection.groups("features"),
    default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=30,
    description="Re-materializes an author's features when their raw documents change.")

defs = dg.Definitions(assets=[cleaned_documents, embedded_chunks], jobs=[features_job],
                      sensors=[features_automation])
