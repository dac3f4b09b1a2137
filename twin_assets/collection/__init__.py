"""Collection: registered links become raw documents in the data warehouse."""

import dagster as dg

from twin_assets.collection.assets import raw_documents
from twin_assets.collection.sensors import build_new_links_sensor

collection_job = dg.define_asset_job("collection_job", selection=dg.AssetSelection.groups("collection"),
                                     description="Crawl one author's links.")

defs = dg.Definitions(assets=[raw_documents], jobs=[collection_job],
                      sensors=[build_new_links_sensor(collection_job)])
