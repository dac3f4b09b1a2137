"""Raw documents per author: the registered links crawled into the warehouse."""

import time

import dagster as dg
from pydantic import Field

from twin_assets.checks import check_results, check_specs
from twin_assets.collection.checks import RAW_CHECKS, check_raw_documents, failed_links_outcome
from twin_assets.collection.crawl import CrawlReport, crawl_links, links_to_crawl
from twin_assets.collection.crawlers import CrawlerDispatcher
from twin_assets.metadata import markdown_table
from twin_assets.partitions import authors
from twin_resources import HttpClient, ProgressReporter, Warehouse
from twin_resources.domain.documents import Category
from twin_resources.domain.features import content_version
from twin_resources.warehouse import WarehouseError

RAW_ASSETS = {category: dg.AssetKey(f"raw_{category.value}") for category in Category}
_DESCRIPTIONS = {
    Category.ARTICLES: "The author's articles (Medium, Substack, blogs), as crawled: title, subtitle, main text.",
    Category.POSTS: "The author's short posts (LinkedIn public posts and data exports), as crawled.",
    Category.REPOSITORIES: "The author's code repositories, shallow-cloned: text files with whitespace intact.",
}
PREVIEW_ROWS = 15


class CrawlConfig(dg.Config):
    recrawl: bool = Field(default=False, description="crawl every registered link again, not only new and failed ones")
    max_attempts: int = Field(default=5, description="failed links are retried until they have failed this often")
    max_file_bytes: int = Field(default=200_000, description="repository files larger than this are skipped")


def _category_metadata(report: CrawlReport, category: Category, stored_total: int, seconds: float) -> dict:
    counts = report.outcomes(category)
    failures = report.failures_for(category)
    preview = [[s.document.label[:70], s.document.link, s.outcome] for s in report.documents(category)[:PREVIEW_ROWS]]
    metadata = {
        "stored": dg.MetadataValue.int(stored_total),
        "new": counts["new"], "updated": counts["updated"], "unchanged": counts["unchanged"],
        "failed_links": len(failures),
        "crawl_seconds": dg.MetadataValue.float(round(seconds, 2)),
    }
    if preview:
        metadata["preview"] = dg.MetadataValue.md(markdown_table(["document", "link", "this run"], preview))
    if failures:
        metadata["failures"] = dg.MetadataValue.md(
            markdown_table(["link", "reason"], [[link.url, error] for link, error in failures]))
    return metadata


@dg.multi_asset(
    specs=[dg.AssetSpec(key, description=_DESCRIPTIONS[category], group_name="collection",
                        kinds={"mongodb"}, tags={"stage": "collection"})
           for category, key in RAW_ASSETS.items()],
    check_specs=[spec for key in RAW_ASSETS.values() for spec in check_specs(RAW_CHECKS, key)],
    partitions_def=authors,
)
def raw_documents(context: dg.AssetExecutionContext, config: CrawlConfig, warehouse: Warehouse,
                  http: HttpClient, progress: dg.ResourceParam[ProgressReporter]):
    """Crawl the partition's author's links: new and failed ones, or all with `recrawl`."""
    try:
        author = warehouse.require_user(context.partition_key)
    except WarehouseError as error:
        raise dg.Failure(str(error)) from None
    links = links_to_crawl(warehouse, author, config.recrawl, config.max_attempts)
    context.log.info(f"crawling {len(links)} links of {author.full_name} into the {warehouse.location}")

    def on_link(link, error):
        progress.advance(link.url)
        if error:
            context.log.warning(f"failed: {link.url}: {error}")
        else:
            context.log.info(f"crawled: {link.url}")

    started = time.perf_counter()
    progress.start(len(links), f"crawling {author.full_name}")
    try:
        report = crawl_links(author, links, CrawlerDispatcher(http, config.max_file_bytes), warehouse, on_link)
    finally:
        progress.finish()
    seconds = time.perf_counter() - started

    for category, key in RAW_ASSETS.items():
        hashes = [(r["_id"], r["content_hash"]) for r in
                  warehouse.records(category.value, {"author_id": author.id}, {"content_hash": 1})]
        yield dg.MaterializeResult(asset_key=key, metadata=_category_metadata(report, category, len(hashes), seconds),
                                   data_version=dg.DataVersion(content_version(hashes)))
        outcomes = [*check_raw_documents(warehouse, category, author),
                    failed_links_outcome(report.failures_for(category))]
        yield from check_results(RAW_CHECKS, outcomes, key)
