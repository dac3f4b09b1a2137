import json

import pytest

from tests.conftest import SHARED_HANDBOOK
from twin_resources import Warehouse
from twin_resources.domain.documents import ArticleContent, ArticleDocument, Category, LinkRecord
from twin_resources.transfer import TransferError, export_warehouse, import_warehouse


def handbook_like(directory, articles):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "UserDocument.json").write_text(json.dumps(
        [{"_id": "old-user-1", "first_name": "Maxime", "last_name": "Labonne"}]))
    (directory / "ArticleDocument.json").write_text(json.dumps(articles))
    return directory


def article(link, body="Some text.", platform="maximelabonne.substack.com"):
    return {"_id": "old-id", "content": {"Title": "T", "Subtitle": None, "Content": body, "language": "en"},
            "platform": platform, "author_id": "old-user-1", "author_full_name": "Maxime Labonne", "link": link}


def test_a_handbook_export_imports_with_our_ids_and_platform_names(warehouse, tmp_path):
    source = handbook_like(tmp_path / "hb", [article("https://maximelabonne.substack.com/p/a"),
                                             article("https://medium.com/@m/b", platform="medium")])
    counts = import_warehouse(warehouse, source)
    assert counts["articles"]["new"] == 2 and counts["users"]["new"] == 1
    stored = sorted(warehouse.documents(Category.ARTICLES), key=lambda d: d.link)
    user = warehouse.require_user("Maxime Labonne")
    assert {d.link: d.platform for d in stored} == {"https://maximelabonne.substack.com/p/a": "substack",
                                                    "https://medium.com/@m/b": "medium"}
    assert all(d.author_id == user.id and d.id == ArticleDocument.create(
        link=d.link, author=user, platform="x", content=d.content).id for d in stored)
    assert {link.status for link in warehouse.links()} == {"crawled"}


def test_importing_twice_changes_nothing(warehouse, tmp_path):
    source = handbook_like(tmp_path / "hb", [article("https://maximelabonne.substack.com/p/a")])
    import_warehouse(warehouse, source)
    before = {name: list(warehouse.records(name)) for name in ("users", "links", "articles")}
    counts = import_warehouse(warehouse, source)
    assert {name: set(+outcome) for name, outcome in counts.items()} == {
        "users": {"unchanged"}, "articles": {"unchanged"}, "links": {"unchanged"}}
    assert {name: list(warehouse.records(name)) for name in before} == before


def test_a_bad_record_stores_nothing_and_names_the_record(warehouse, tmp_path):
    broken = article("https://maximelabonne.substack.com/p/b")
    del broken["content"]["Content"]
    source = handbook_like(tmp_path / "hb", [article("https://maximelabonne.substack.com/p/a"), broken])
    with pytest.raises(TransferError, match="ArticleDocument.json: record 1 does not fit"):
        import_warehouse(warehouse, source)
    assert warehouse.count("articles") == 0 and warehouse.count("users") == 0


@pytest.mark.parametrize("content", ["{not json", '{"a": 1}'])
def test_unreadable_files_are_refused(warehouse, tmp_path, content):
    (tmp_path / "articles.json").write_text(content)
    with pytest.raises(TransferError, match="articles.json"):
        import_warehouse(warehouse, tmp_path)


def test_a_directory_without_export_files_is_refused(warehouse, tmp_path):
    with pytest.raises(TransferError, match="no export files"):
        import_warehouse(warehouse, tmp_path)


def test_export_then_import_elsewhere_round_trips_exactly(warehouse, author, tmp_path):
    document = ArticleDocument.create(link="https://x.dev/a", author=author, platform="blog",
                                      content=ArticleContent(title="A", subtitle="s", body="Body\n\nMore."))
    warehouse.upsert_document(document)
    warehouse.add_link(LinkRecord.create("https://x.dev/a", author))
    export_warehouse(warehouse, tmp_path / "first")

    elsewhere = Warehouse(home=str(tmp_path / "elsewhere")).connect()
    import_warehouse(elsewhere, tmp_path / "first")
    export_warehouse(elsewhere, tmp_path / "second")

    for name in ("users", "links", "articles", "posts", "repositories"):
        assert (tmp_path / "first" / f"{name}.json").read_text() == (tmp_path / "second" / f"{name}.json").read_text()
    assert next(elsewhere.documents(Category.ARTICLES)) == document


@pytest.mark.skipif(not SHARED_HANDBOOK.exists(), reason="the shared Handbook export is not beside this checkout")
def test_the_real_handbook_export_imports_76_articles_and_2_users_twice(warehouse):
    for _ in range(2):
        import_warehouse(warehouse, SHARED_HANDBOOK)
        assert (warehouse.count("articles"), warehouse.count("users")) == (76, 2)
    assert {u.full_name for u in warehouse.users()} == {"Maxime Labonne", "Paul Iusztin"}
    assert warehouse.count("articles", {"author_id": warehouse.require_user("Paul Iusztin").id}) == 50


def test_a_user_without_a_name_is_refused_not_created_as_none_none(warehouse, tmp_path):
    source = handbook_like(tmp_path / "hb", [article("https://maximelabonne.substack.com/p/a")])
    (source / "UserDocument.json").write_text(json.dumps([{"_id": "old-user-1", "first_name": None, "last_name": None}]))
    with pytest.raises(TransferError, match="UserDocument.json: record 0 does not fit: the user has no name"):
        import_warehouse(warehouse, source)
    assert warehouse.count("users") == 0 and warehouse.count("articles") == 0


@pytest.mark.parametrize(("field", "value", "says"), [
    ("link", "javascript:alert(1)", "is not a http or https link"),
    ("link", "file:///etc/passwd", "is not a http or https link"),
    ("link", "data:text/html,<script>", "is not a http or https link"),
    ("content", "just a string", "record 0 does not fit"),
])
def test_handbook_records_that_are_not_documents_are_refused_in_one_line(warehouse, tmp_path, field, value, says):
    record = article("https://maximelabonne.substack.com/p/a")
    record[field] = value
    with pytest.raises(TransferError, match=says) as refused:
        import_warehouse(warehouse, handbook_like(tmp_path / "hb", [record]))
    assert "\n" not in str(refused.value) and warehouse.count("articles") == 0


def test_a_missing_platform_is_read_from_the_link(warehouse, tmp_path):
    record = article("https://medium.com/@m/b")
    record["platform"] = None
    import_warehouse(warehouse, handbook_like(tmp_path / "hb", [record]))
    assert [d.platform for d in warehouse.documents(Category.ARTICLES)] == ["medium"]


def test_json_nested_too_deep_is_refused_in_one_line(warehouse, tmp_path):
    (tmp_path / "articles.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(TransferError, match="nested too deep"):
        import_warehouse(warehouse, tmp_path)


def test_an_edited_export_is_trusted_by_its_content_not_its_stale_hash(warehouse, author, tmp_path):
    document = ArticleDocument.create(link="https://x.dev/a", author=author, platform="blog",
                                      content=ArticleContent(title="T", body="The first version."))
    warehouse.upsert_document(document)
    export_warehouse(warehouse, tmp_path / "export")
    exported = json.loads((tmp_path / "export" / "articles.json").read_text())
    exported[0]["content"]["body"] = "An edited version, its content_hash left as it was."
    (tmp_path / "export" / "articles.json").write_text(json.dumps(exported))
    counts = import_warehouse(warehouse, tmp_path / "export")
    assert counts["articles"]["updated"] == 1
    [stored] = warehouse.documents(Category.ARTICLES)
    assert stored.content.body.startswith("An edited version") and stored.content_hash != document.content_hash


def test_an_import_never_moves_a_page_to_another_author(warehouse, author, tmp_path):
    theirs = ArticleDocument.create(link="https://maximelabonne.substack.com/p/a", author=author, platform="blog",
                                    content=ArticleContent(title="T", body="Ada's own words."))
    warehouse.upsert_document(theirs)
    source = handbook_like(tmp_path / "hb", [article("https://maximelabonne.substack.com/p/a")])
    with pytest.raises(TransferError, match="1 documents are stored for another author"):
        import_warehouse(warehouse, source)
    [stored] = warehouse.documents(Category.ARTICLES)
    assert stored.author_id == author.id and warehouse.count("users") == 1
