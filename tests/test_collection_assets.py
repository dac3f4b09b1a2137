import dagster as dg
import pytest

from twin_assets.collection.assets import RAW_ASSETS, raw_documents
from twin_assets.collection.sensors import build_new_links_sensor
from twin_assets.definitions import build_definitions
from twin_resources import HttpClient, ProgressReporter
from twin_resources.domain.documents import Category, LinkRecord, LinkStatus, UserDocument
from twin_resources.links import register_links

GOOD_PAGES = ["/substack/p/evals", "/medium/@ada/pipelines", "/blog/voice.html", "/linkedin/posts/streaming"]
BAD_PAGES = ["/status/404", "/status/500", "/report.pdf", "/empty", "/drafts/secret", "/slow"]


def crawl(warehouse, http, instance, key="ada-quill", recrawl=False):
    if not instance.has_dynamic_partition("authors", key):  # what the sensor and `twin crawl` do
        instance.add_dynamic_partitions("authors", [key])
    return dg.materialize(
        [raw_documents], partition_key=key, instance=instance, raise_on_error=False,
        resources={"warehouse": warehouse, "http": http, "progress": ProgressReporter()},
        run_config={"ops": {"raw_documents": {"config": {"recrawl": recrawl}}}})


def metadata(result, category):
    [event] = [e for e in result.get_asset_materialization_events()
               if e.step_materialization_data.materialization.asset_key == RAW_ASSETS[category]]
    return {k: v.value for k, v in event.step_materialization_data.materialization.metadata.items()}


def checks(result):
    return {(e.asset_key.path[-1], e.check_name): e.passed for e in
            (event.event_specific_data for event in result.all_events if event.event_type_value == "ASSET_CHECK_EVALUATION")}


def test_crawling_stores_each_category_and_fails_bad_links_without_stopping(warehouse, http, site, instance,
                                                                           git_repository):
    http = HttpClient(min_interval_s=0, backoff_s=0.01, timeout_s=0.5, retries=1)
    urls = [site.url(p) for p in GOOD_PAGES + BAD_PAGES] + [str(git_repository)]
    register_links(warehouse, "Ada Quill", urls)

    result = crawl(warehouse, http, instance)

    assert result.success
    assert (warehouse.count("articles"), warehouse.count("posts"), warehouse.count("repositories")) == (3, 1, 1)
    statuses = {link.url.removeprefix(site.base_url): (link.status, link.last_error) for link in warehouse.links()}
    assert all(statuses[p][0] == LinkStatus.CRAWLED for p in GOOD_PAGES)
    assert all(statuses[p][0] == LinkStatus.FAILED and statuses[p][1] for p in BAD_PAGES)
    assert metadata(result, Category.ARTICLES)["new"] == 3
    assert metadata(result, Category.ARTICLES)["failed_links"] == len(BAD_PAGES)
    assert "| Evals first |" in metadata(result, Category.ARTICLES)["preview"]
    assert len(checks(result)) == 12
    assert all(passed for (_, name), passed in checks(result).items() if name != "links_crawled")
    # failed links are a warning on the assets they would have filled, not a green run that hides them
    assert checks(result)[("raw_articles", "links_crawled")] is False
    assert checks(result)[("raw_repositories", "links_crawled")] is True


def test_crawling_again_changes_nothing(warehouse, http, site, instance, git_repository):
    register_links(warehouse, "Ada Quill", [site.url(p) for p in GOOD_PAGES] + [str(git_repository)])
    crawl(warehouse, http, instance)
    before = {c: list(warehouse.records(c.value)) for c in Category}

    again = crawl(warehouse, http, instance, recrawl=True)

    assert {c: list(warehouse.records(c.value)) for c in Category} == before
    assert metadata(again, Category.ARTICLES) | {"crawl_seconds": 0} == {
        "stored": 3, "new": 0, "updated": 0, "unchanged": 3, "failed_links": 0, "crawl_seconds": 0,
        "preview": metadata(again, Category.ARTICLES)["preview"]}


def test_only_new_and_failed_links_are_crawled_unless_asked(warehouse, http, site, instance):
    register_links(warehouse, "Ada Quill", [site.url("/blog/voice.html"), site.url("/flaky")])
    http_without_retries = HttpClient(min_interval_s=0, retries=0)
    crawl(warehouse, http_without_retries, instance)
    assert {link.status for link in warehouse.links()} == {LinkStatus.CRAWLED, LinkStatus.FAILED}

    crawl(warehouse, HttpClient(min_interval_s=0, retries=1, backoff_s=0.01), instance)  # /flaky: fine on hit 3

    assert site.server.hits["/blog/voice.html"] == 1
    assert {link.status for link in warehouse.links()} == {LinkStatus.CRAWLED}


def test_empty_documents_fail_the_content_check(warehouse, http, site, instance, author):
    from twin_resources.domain.documents import ArticleContent, ArticleDocument

    register_links(warehouse, "Ada Quill", [site.url("/blog/voice.html")])
    warehouse.upsert_document(ArticleDocument.create(link="https://x.dev/blank", author=author, platform="blog",
                                                     content=ArticleContent(title="Blank", body="  ")))
    result = crawl(warehouse, http, instance)
    assert checks(result)[("raw_articles", "content_not_empty")] is False
    assert checks(result)[("raw_articles", "links_unique")] is True


def test_an_unknown_author_fails_the_run_with_the_reason(warehouse, http, instance):
    instance.add_dynamic_partitions("authors", ["nobody"])
    result = crawl(warehouse, http, instance, key="nobody")
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert not result.success and "unknown author 'nobody'" in failure.step_failure_data.error.message


def test_the_sensor_requests_a_crawl_for_authors_with_new_links(warehouse, instance, site):
    register_links(warehouse, "Ada Quill", [site.url("/blog/voice.html")])
    sensor = build_new_links_sensor(dg.define_asset_job("collection_job", selection=[raw_documents]))

    def evaluate(cursor=None):
        with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"warehouse": warehouse}) as context:
            return sensor(context)

    first = evaluate()
    assert [r.partition_key for r in first.run_requests] == ["ada-quill"]
    assert first.dynamic_partitions_requests[0].partition_keys == ["ada-quill"]
    assert not evaluate(first.cursor).run_requests

    register_links(warehouse, "Bo Li", [site.url("/substack/p/evals")])
    assert [r.partition_key for r in evaluate(first.cursor).run_requests] == ["bo-li"]


def job_assets(repository, name: str) -> set[str]:
    return {key.to_user_string() for key in repository.get_job(name).asset_layer.executable_asset_keys}


def test_the_definitions_hold_the_assets_checks_jobs_and_sensor(twin_home):
    defs = build_definitions(gpu=False)
    repository = defs.get_repository_def()
    assert {key.to_user_string() for key in repository.asset_graph.get_all_asset_keys()} == {
        "raw_articles", "raw_posts", "raw_repositories", "cleaned_documents", "embedded_chunks", "base_model",
        "served_model", "gguf_model", "exl2_model", "reranker_model", "instruction_dataset", "preference_dataset",
        "sft_model", "dpo_model", "twin_gguf", "eval_report", "promoted_model"}
    assert len(repository.asset_graph.asset_check_keys) == 12 + 2 + 5 + 1 + 4 + 2 + 1 + 1
    assert all(repository.asset_graph.get_check_spec(key).description for key in repository.asset_graph.asset_check_keys)
    assert {job.name for job in repository.get_all_jobs()} >= {"main_job", "collection_job", "features_job",
                                                                "models_job", "datasets_job", "training_job",
                                                                "reranker_job"}
    per_author = {"raw_articles", "raw_posts", "raw_repositories", "cleaned_documents", "embedded_chunks"}
    model_wide = {"base_model", "served_model", "gguf_model"}
    # jobs by scope: an author's runs never retrain what all authors share; no CPU job holds a GPU-only asset
    assert job_assets(repository, "collection_job") | job_assets(repository, "features_job") == per_author
    assert job_assets(repository, "models_job") == model_wide
    datasets = {"instruction_dataset", "preference_dataset"}
    assert job_assets(repository, "datasets_job") == datasets
    twin = {"sft_model", "dpo_model", "twin_gguf", "eval_report", "promoted_model"}
    assert job_assets(repository, "main_job") == per_author | model_wide | datasets | twin
    assert job_assets(repository, "training_job") == datasets | twin | {"base_model", "served_model"}
    with_gpu = build_definitions(gpu=True).get_repository_def()
    assert "exl2_model" in job_assets(with_gpu, "models_job") and "exl2_model" in job_assets(with_gpu, "main_job")
    assert sorted(sensor.name for sensor in repository.sensor_defs) == [
        "alerts_sensor", "dead_runs_sensor", "features_automation", "new_links_sensor", "new_writing_sensor",
        "training_automation"]


def test_a_page_is_one_authors_registering_or_crawling_it_for_another_changes_nothing(warehouse, http, site,
                                                                                       instance):
    page = site.url("/blog/voice.html")
    register_links(warehouse, "Ada Quill", [page])
    assert crawl(warehouse, http, instance).success
    with pytest.raises(ValueError, match="already registered for Ada Quill"):
        register_links(warehouse, "Bo Li", [page, site.url("/substack/p/evals")])
    assert warehouse.find_user("Bo Li") is None and len(warehouse.links()) == 1  # nothing was added

    # a link that reached the registry another way (an old warehouse, an import): the crawl refuses to move it
    bo = UserDocument.from_full_name("Bo Li")
    warehouse.upsert_user(bo)
    warehouse.add_link(LinkRecord.create(page, bo))
    crawl(warehouse, http, instance, key="bo-li")
    [document] = warehouse.documents(Category.ARTICLES)
    assert document.author_full_name == "Ada Quill"
    [bos_link] = warehouse.links(bo.id)
    assert bos_link.status == LinkStatus.FAILED and "stored for Ada Quill" in bos_link.last_error
