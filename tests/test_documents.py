import re

import pytest

from twin_resources.domain.documents import (
    ArticleContent,
    ArticleDocument,
    LinkRecord,
    UserDocument,
    author_key,
    normalize_link,
)


def test_links_that_differ_only_in_spelling_normalize_to_one():
    spellings = ["https://Ada.Substack.com/p/evals/", "https://ada.substack.com:443/p/evals?utm_source=x#top",
                 "https://ada.substack.com/p/evals?ref=feed"]
    assert {normalize_link(s) for s in spellings} == {"https://ada.substack.com/p/evals"}


def test_an_international_host_has_one_spelling():
    spellings = ["https://Bücher.example/p/1", "https://xn--bcher-kva.example/p/1", "https://BÜCHER.example:443/p/1/"]
    assert {normalize_link(s) for s in spellings} == {"https://xn--bcher-kva.example/p/1"}


def test_meaningful_query_parameters_are_kept():
    assert normalize_link("http://blog.example/?p=42&utm_medium=mail") == "http://blog.example?p=42"


def test_local_paths_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert normalize_link("repo") == str(tmp_path / "repo")


def test_author_key_is_an_ascii_slug():
    assert author_key("  Zoë Ann  LEE ") == "zoe-ann-lee"


def test_the_same_author_spelled_differently_is_one_user():
    assert UserDocument.from_full_name("ada  quill").id == UserDocument.from_full_name("Ada Quill").id


def test_document_id_follows_the_link_and_hash_follows_the_content():
    author = UserDocument.from_full_name("Ada Quill")
    first = ArticleDocument.create(link="https://x.dev/a/", author=author, platform="blog",
                                   content=ArticleContent(title="T", body="one"))
    again = ArticleDocument.create(link="https://x.dev/a", author=author, platform="blog",
                                   content=ArticleContent(title="T", body="one"))
    edited = ArticleDocument.create(link="https://x.dev/a", author=author, platform="blog",
                                    content=ArticleContent(title="T", body="two"))
    assert first.id == again.id == edited.id
    assert first.content_hash == again.content_hash != edited.content_hash


def test_a_link_is_registered_once_per_author():
    ada, bo = UserDocument.from_full_name("Ada Quill"), UserDocument.from_full_name("Bo Li")
    assert LinkRecord.create("https://x.dev/a", ada).id == LinkRecord.create("https://x.dev/a/", ada).id
    assert LinkRecord.create("https://x.dev/a", ada).id != LinkRecord.create("https://x.dev/a", bo).id


@pytest.mark.parametrize("name", ["李小龙", "Ли Сяолун", "محمد علي", "José 李", "Zoë Ann Lee"])
def test_a_name_in_any_script_is_accepted_with_a_stable_key_and_kept_as_written(name):
    user = UserDocument.from_full_name(name)
    assert user.full_name == name and re.fullmatch(r"[a-z0-9][a-z0-9-]*", user.key)
    assert UserDocument.from_full_name(f"  {name.upper()}  ").key == user.key  # spacing and case do not matter


def test_names_that_differ_get_different_keys_and_names_without_letters_are_refused():
    keys = {UserDocument.from_full_name(n).key for n in ("李小龙", "李小", "José 李", "José", "Ли Сяолун")}
    assert len(keys) == 5
    with pytest.raises(ValueError, match="no letters or digits"):
        UserDocument.from_full_name("!!! ...")
