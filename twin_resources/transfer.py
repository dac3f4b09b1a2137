"""Warehouse import and export: one JSON file per collection.

Import also reads the LLM Engineer's Handbook's export (`UserDocument.json`, `ArticleDocument.json`,
`PostDocument.json`, `RepositoryDocument.json`). Every file is read and validated before anything is
written, and writes are upserts, so a bad file stores nothing and importing twice changes nothing.
"""

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import ValidationError

from twin_resources.domain.documents import (
    DOCUMENT_TYPES,
    ArticleContent,
    Category,
    LinkRecord,
    LinkStatus,
    PostContent,
    RawDocument,
    RepositoryContent,
    RepositoryFile,
    UserDocument,
    content_hash,
)
from twin_resources.warehouse import COLLECTIONS, Warehouse

HANDBOOK_FILES = {"ArticleDocument.json": Category.ARTICLES, "PostDocument.json": Category.POSTS,
                  "RepositoryDocument.json": Category.REPOSITORIES}


class TransferError(ValueError):
    """A file to import is unreadable or holds records that do not fit; nothing was written."""


@dataclass
class ImportPlan:
    users: list[UserDocument] = field(default_factory=list)
    links: list[LinkRecord] = field(default_factory=list)
    documents: list[RawDocument] = field(default_factory=list)


def _load_json_list(path: Path) -> list[dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise TransferError(f"{path.name}: not readable JSON ({error})") from None
    except RecursionError:
        raise TransferError(f"{path.name}: JSON nested too deep to be an export") from None
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise TransferError(f"{path.name}: expected a JSON list of objects")
    return data


def _validated(path: Path, index: int, build):
    try:
        return build()
    except (ValidationError, KeyError, TypeError, ValueError, AttributeError) as error:
        reason = str(error).splitlines()[0] if not isinstance(error, KeyError) else f"missing field {error}"
        raise TransferError(f"{path.name}: record {index} does not fit: {reason}") from None


WEB_SCHEMES = ("http", "https")
GIT_SCHEMES = ("http", "https", "ssh", "git", "file", "")  # "": a local path or git@host:owner/repo


def checked_link(link: str, category: Category | None) -> str:
    """`link` when a stored record may carry it: articles and posts come from the web, repositories from
    anywhere git clones, and nothing from `javascript:`, `data:` and the like."""
    scheme = urlsplit(link).scheme.lower()
    if len(scheme) == 1:  # a Windows drive letter is a path, not a scheme
        scheme = ""
    allowed = WEB_SCHEMES if category in (Category.ARTICLES, Category.POSTS) else GIT_SCHEMES
    if scheme not in allowed or (category is not None and scheme == "file" and category != Category.REPOSITORIES):
        raise ValueError(f"link {link[:80]!r} is not a {' or '.join(s for s in allowed if s) or 'path'} link")
    return link


def trusted(document: RawDocument) -> RawDocument:
    """The document as its content says, not as the file says: its hash computed again, its link checked."""
    checked_link(document.link, document.category)
    return document.model_copy(update={"content_hash": content_hash(document.content)})


def _handbook_name(record: dict) -> str:
    parts = [record.get("first_name"), record.get("last_name")]
    if not all(part is None or isinstance(part, str) for part in parts):
        raise ValueError("first_name and last_name must be text")
    name = " ".join(part for part in parts if part)
    if not name.strip():
        raise ValueError("the user has no name")
    return name


def plan_native_import(directory: Path) -> ImportPlan:
    """Records from our own export (`users.json`, `links.json`, `articles.json`, ...)."""
    plan = ImportPlan()
    for name in COLLECTIONS:
        path = directory / f"{name}.json"
        if not path.exists():
            continue
        for index, record in enumerate(_load_json_list(path)):
            if name == "users":
                plan.users.append(_validated(path, index, lambda: UserDocument.model_validate(record)))
            elif name == "links":
                plan.links.append(_validated(path, index, lambda: _checked_link_record(record)))
            else:
                document_type = DOCUMENT_TYPES[Category(name)]
                plan.documents.append(_validated(path, index, lambda: trusted(document_type.model_validate(record))))
    return plan


def handbook_platform(platform: str, link: str) -> str:
    """The Handbook stores a domain ("decodingml.substack.com") or a name ("medium"); we store names."""
    host = (urlsplit(link).hostname or platform).lower()
    for name in ("medium", "substack", "linkedin", "github"):
        if name in platform.lower() or host == f"{name}.com" or host.endswith(f".{name}.com"):
            return name
    return "blog"


def _handbook_content(category: Category, record: dict):
    content = record["content"]
    if category == Category.ARTICLES:
        return ArticleContent(title=content.get("Title") or record["link"], subtitle=content.get("Subtitle"),
                              body=content["Content"], language=content.get("language"))
    if category == Category.POSTS:
        body = content.get("Content") or content.get("text") or "\n\n".join(
            str(v) for v in content.values() if isinstance(v, str))
        return PostContent(title=content.get("Title"), body=body, language=content.get("language"))
    files = [RepositoryFile(path=path, text=text) for path, text in sorted(content.items()) if isinstance(text, str)]
    return RepositoryContent(name=record.get("name") or record["link"].rstrip("/").rsplit("/", 1)[-1], files=files)


def _checked_link_record(record: dict) -> LinkRecord:
    link = LinkRecord.model_validate(record)
    checked_link(link.url, None)
    return link


def plan_handbook_import(directory: Path) -> ImportPlan:
    """Records from the LLM Engineer's Handbook export; its ids are replaced by ours (from names and links)."""
    plan = ImportPlan()
    users_by_old_id: dict[str, UserDocument] = {}
    users_path = directory / "UserDocument.json"
    if users_path.exists():
        for index, record in enumerate(_load_json_list(users_path)):
            user = _validated(users_path, index, lambda: UserDocument.from_full_name(_handbook_name(record)))
            users_by_old_id[str(record.get("_id"))] = user
    users_by_key = {user.key: user for user in users_by_old_id.values()}
    for filename, category in HANDBOOK_FILES.items():
        path = directory / filename
        if not path.exists():
            continue
        for index, record in enumerate(_load_json_list(path)):
            def build():
                author = users_by_old_id.get(str(record.get("author_id"))) or \
                    UserDocument.from_full_name(record["author_full_name"])
                users_by_key.setdefault(author.key, author)
                return DOCUMENT_TYPES[category].create(
                    link=checked_link(record["link"], category), author=author,
                    platform=handbook_platform(record.get("platform") or "", record["link"]),
                    content=_handbook_content(category, record))
            plan.documents.append(_validated(path, index, build))
    plan.users = list(users_by_key.values())
    for document in plan.documents:
        link = LinkRecord.create(document.link, next(u for u in plan.users if u.id == document.author_id))
        plan.links.append(link.model_copy(update={"status": LinkStatus.CRAWLED, "document_ids": [document.id]}))
    return plan


def plan_import(directory: Path) -> ImportPlan:
    if not directory.is_dir():
        raise TransferError(f"not a directory: {directory}")
    names = {path.name for path in directory.glob("*.json")}
    if names & {*HANDBOOK_FILES, "UserDocument.json"}:
        return plan_handbook_import(directory)
    if names & {f"{name}.json" for name in COLLECTIONS}:
        return plan_native_import(directory)
    raise TransferError(f"no export files in {directory} (expected users.json, articles.json, ... "
                       "or the Handbook's UserDocument.json, ArticleDocument.json, ...)")


def import_warehouse(warehouse: Warehouse, directory: Path) -> dict[str, Counter]:
    """Import a directory of export files; counts of new/updated/unchanged records per collection."""
    plan = plan_import(directory)
    elsewhere = [f"{d.link} ({owner})" for d in plan.documents if (owner := _other_owner(warehouse, d))]
    if elsewhere:  # checked before anything is written: a page is one author's, an import never moves it
        raise TransferError(f"{len(elsewhere)} documents are stored for another author: {', '.join(elsewhere[:3])}")
    counts: dict[str, Counter] = {}
    for user in plan.users:
        counts.setdefault("users", Counter())[warehouse.put_record("users", user.to_mongo())] += 1
    for document in plan.documents:
        counts.setdefault(document.category.value, Counter())[warehouse.upsert_document(document)] += 1
    for link in plan.links:  # the live registry's crawl history wins over the file's
        counts.setdefault("links", Counter())["new" if warehouse.add_link(link) else "unchanged"] += 1
    return counts


def _other_owner(warehouse: Warehouse, document: RawDocument) -> str | None:
    stored = warehouse.collection(document.category.value).find_one({"_id": document.id},
                                                                    {"author_id": 1, "author_full_name": 1})
    if stored and stored.get("author_id") != document.author_id:
        return stored.get("author_full_name") or stored["author_id"]
    return None


def export_warehouse(warehouse: Warehouse, directory: Path) -> dict[str, int]:
    """Write each collection to `<collection>.json` in `directory`; record counts per collection."""
    directory.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name in COLLECTIONS:
        records = list(warehouse.records(name))
        target = directory / f"{name}.json"
        partial = target.with_suffix(".json.partial")
        partial.write_text(json.dumps(records, ensure_ascii=False, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(partial, target)  # a crash midway leaves the previous export whole
        counts[name] = len(records)
    return counts
