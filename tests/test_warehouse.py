import multiprocessing

import pytest

from twin_resources import Warehouse
from twin_resources.domain.documents import (
    Category,
    LinkRecord,
    LinkStatus,
    PostContent,
    PostDocument,
    UserDocument,
)
from twin_resources.warehouse import WarehouseError


def make_post(author, body="Hello there.", link="https://www.linkedin.com/feed/update/urn:li:share:1"):
    return PostDocument.create(link=link, author=author, platform="linkedin", content=PostContent(body=body))


def test_storing_a_document_reports_new_then_unchanged_then_updated(warehouse, author):
    assert warehouse.upsert_document(make_post(author)) == "new"
    assert warehouse.upsert_document(make_post(author)) == "unchanged"
    assert warehouse.upsert_document(make_post(author, body="Edited.")) == "updated"
    stored = list(warehouse.documents(Category.POSTS))
    assert [p.content.body for p in stored] == ["Edited."]


def test_an_unchanged_document_keeps_its_first_crawl_time(warehouse, author):
    first = make_post(author)
    warehouse.upsert_document(first)
    warehouse.upsert_document(make_post(author))
    assert next(warehouse.documents(Category.POSTS)).crawled_at == first.crawled_at


def test_re_adding_a_link_keeps_its_crawl_history(warehouse, author):
    link = LinkRecord.create("https://x.dev/a", author)
    assert warehouse.add_link(link) is True
    warehouse.record_attempt(link, error="HTTP 500")
    assert warehouse.add_link(LinkRecord.create("https://x.dev/a/", author)) is False
    [stored] = warehouse.links(author.id)
    assert (stored.status, stored.attempts, stored.last_error) == (LinkStatus.FAILED, 1, "HTTP 500")


def test_authors_are_found_by_name_or_key_in_any_spelling(warehouse, author):
    assert warehouse.find_user("ada-quill") == author
    assert warehouse.find_user("  ADA quill ") == author
    with pytest.raises(WarehouseError, match="unknown author 'Bo Li'.*Ada Quill"):
        warehouse.require_user("Bo Li")


def test_the_store_persists_on_disk_across_connections(twin_home, warehouse, author):
    warehouse.upsert_document(make_post(author))
    warehouse.close()
    reopened = Warehouse(home=str(twin_home)).connect()
    assert reopened.count("posts") == 1 and reopened.find_user("Ada Quill") == author


def _write_posts(home: str, worker: int) -> None:
    store = Warehouse(home=home).connect()
    author = UserDocument.from_full_name("Ada Quill")
    for index in range(20):
        store.upsert_document(make_post(author, link=f"https://www.linkedin.com/feed/update/urn:li:share:{index}"))
        store.add_link(LinkRecord.create(f"https://x.dev/{worker}/{index}", author))


def test_several_processes_writing_the_same_documents_leave_no_duplicates(twin_home):
    processes = [multiprocessing.get_context("spawn").Process(target=_write_posts, args=(str(twin_home), worker))
                 for worker in range(3)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    assert [p.exitcode for p in processes] == [0, 0, 0]
    store = Warehouse(home=str(twin_home)).connect()
    assert store.count("posts") == 20 and store.count("links") == 60
