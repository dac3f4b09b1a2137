"""The data warehouse: MongoDB through pymongo, or an embedded pymongo-compatible store on disk.

Both speak the same API subset (find with projection, replace/update with upsert, distinct,
count_documents, delete_many), so there is one code path. montydb has no working unique indexes, so
uniqueness comes from deterministic `_id`s; it reads a document by `_id` through sqlite's key
(`keyed_montydb`), so an upsert costs the same at the first document and at the hundred-thousandth.
"""

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

import dagster as dg
import pymongo
import pymongo.errors
from montydb.storage import StorageDuplicateKeyError
from pydantic import PrivateAttr

from twin_resources.domain.documents import (
    DOCUMENT_TYPES,
    Category,
    LinkRecord,
    LinkStatus,
    RawDocument,
    UserDocument,
    utc_now,
)
from twin_resources.settings import twin_home

# Concurrent upserts of one new `_id` can both try to insert; MongoDB and montydb then raise these.
DUPLICATE_KEY_ERRORS = (pymongo.errors.DuplicateKeyError, StorageDuplicateKeyError)
COLLECTIONS = ("users", "links", *(category.value for category in Category))
OPERATIONS = ("traces",)  # what the server writes about itself: not part of imports and exports
UpsertOutcome = Literal["new", "updated", "unchanged"]


class WarehouseError(RuntimeError):
    """The warehouse cannot do what was asked (unknown author, unreachable server)."""


def _open_database(uri: str, home: str, database: str):
    if uri:
        client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000, tz_aware=True)
        return client, client[database]
    from montydb import MontyClient, set_storage

    from twin_resources import keyed_montydb

    repository = Path(home or twin_home()) / "warehouse"
    repository.mkdir(parents=True, exist_ok=True)
    chosen = repository / ".monty.storage"  # montydb's record of the storage; the files are the same
    if not (repository / "monty.storage.cfg").exists() or not chosen.exists() or \
            chosen.read_text().strip() != keyed_montydb.STORAGE_NAME:
        set_storage(str(repository), storage=keyed_montydb.STORAGE_NAME)
    client = MontyClient(str(repository))
    return client, client[database]


def _ensure_collections(db) -> None:
    """Create every collection up front: montydb processes racing to create one on first write crash."""
    existing = set(db.list_collection_names())
    for name in (*COLLECTIONS, *OPERATIONS):
        if name in existing:
            continue
        try:
            db.create_collection(name)
        except Exception as error:  # another process created it in between
            if name not in db.list_collection_names():
                raise WarehouseError(f"cannot create collection {name!r}: {error}") from error


class Warehouse(dg.ConfigurableResource):
    """Users, the link registry and raw documents per category."""

    uri: str = ""
    home: str = ""
    database: str = "twin"

    _client = PrivateAttr(default=None)
    _db = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self.connect()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.close()

    def connect(self) -> "Warehouse":
        if self._db is None:
            self._client, self._db = _open_database(self.uri, self.home, self.database)
            _ensure_collections(self._db)
        return self

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = self._db = None

    @property
    def location(self) -> str:
        return "MongoDB" if self.uri else f"embedded store in {Path(self.home or twin_home()) / 'warehouse'}"

    def collection(self, name: str):
        db = self.connect()._db
        if self.uri:
            return db[name]
        from twin_resources.keyed_montydb import KeyedMontyCollection

        return KeyedMontyCollection(db, name)  # finds a document by `_id` through the key

    def _insert_if_missing(self, collection: str, record: dict) -> bool:
        """Insert unless a record with this `_id` exists; True when inserted."""
        fields = {key: value for key, value in record.items() if key != "_id"}  # montydb rejects `_id` here
        try:
            result = self.collection(collection).update_one(
                {"_id": record["_id"]}, {"$setOnInsert": fields}, upsert=True)
        except DUPLICATE_KEY_ERRORS:  # another process inserted it between our lookup and insert
            return False
        return result.upserted_id is not None

    def _replace(self, collection: str, record: dict) -> None:
        """Write `record` whole under its `_id`, inserting it if missing."""
        try:
            self.collection(collection).replace_one({"_id": record["_id"]}, record, upsert=True)
        except DUPLICATE_KEY_ERRORS:  # lost an insert race: the record exists now, so replace it
            self.collection(collection).replace_one({"_id": record["_id"]}, record)

    # users

    def upsert_user(self, user: UserDocument) -> bool:
        """Store a user; True when it is new."""
        return self._insert_if_missing("users", user.to_mongo())

    def users(self) -> list[UserDocument]:
        return [UserDocument.from_mongo(r) for r in self.collection("users").find({}).sort("key", 1)]

    def find_user(self, name_or_key: str) -> UserDocument | None:
        """An author by key ("ada-quill") or by full name in any case and spacing ("ada  QUILL")."""
        try:
            key = UserDocument.from_full_name(name_or_key).key
        except ValueError:  # no letters or digits: nobody's name
            return None
        record = self.collection("users").find_one({"key": key})
        return UserDocument.from_mongo(record) if record else None

    def require_user(self, name_or_key: str) -> UserDocument:
        user = self.find_user(name_or_key)
        if user is None:
            known = ", ".join(u.full_name for u in self.users()) or "none yet"
            raise WarehouseError(f"unknown author {name_or_key!r} (known authors: {known})")
        return user

    # the link registry

    def add_link(self, link: LinkRecord) -> bool:
        """Register a link; re-adding an existing one keeps its crawl history. True when it is new."""
        return self._insert_if_missing("links", link.to_mongo())

    def links(self, author_id: str | None = None, statuses: Iterable[LinkStatus] | None = None,
              added_after: str | None = None) -> list[LinkRecord]:
        query: dict = {}
        if author_id:
            query["author_id"] = author_id
        if statuses is not None:
            query["status"] = {"$in": [str(status) for status in statuses]}
        if added_after:
            query["added_at"] = {"$gt": added_after}
        records = self.collection("links").find(query).sort("added_at", 1)
        return [LinkRecord.from_mongo(r) for r in records]

    def link_owner(self, url: str) -> UserDocument | None:
        """The author who registered `url` (normalized), if anyone did."""
        record = self.collection("links").find_one({"url": url}, {"author_id": 1})
        if record is None:
            return None
        user = self.collection("users").find_one({"_id": record["author_id"]})
        return UserDocument.from_mongo(user) if user else None

    def record_attempt(self, link: LinkRecord, error: str | None = None,
                       document_ids: list[str] | None = None) -> None:
        """Write down how crawling a link went: crawled with its documents, or failed with why."""
        fields: dict = {"last_attempt_at": utc_now().isoformat(), "last_error": error,
                        "status": str(LinkStatus.FAILED if error else LinkStatus.CRAWLED)}
        if document_ids is not None:
            fields["document_ids"] = document_ids
        self.collection("links").update_one({"_id": link.id}, {"$set": fields, "$inc": {"attempts": 1}})

    # raw documents

    def upsert_document(self, document: RawDocument) -> UpsertOutcome:
        """Store a document unless an identical one is there; the first crawl time is kept on no change.
        `WarehouseError` when the page is stored for another author: a crawl never moves it."""
        collection = self.collection(document.category.value)
        stored = collection.find_one({"_id": document.id}, {"content_hash": 1, "author_id": 1, "author_full_name": 1})
        if stored and stored.get("author_id") != document.author_id:
            raise WarehouseError(f"{document.link} is stored for {stored.get('author_full_name') or 'another author'}: "
                                 "a page is one author's")
        if stored and stored.get("content_hash") == document.content_hash \
                and stored.get("author_id") == document.author_id:
            return "unchanged"
        self._replace(document.category.value, document.to_mongo())
        return "updated" if stored else "new"

    def documents(self, category: Category, author_id: str | None = None) -> Iterator[RawDocument]:
        document_type = DOCUMENT_TYPES[category]
        query = {"author_id": author_id} if author_id else {}
        for record in self.collection(category.value).find(query).sort("_id", 1):
            yield document_type.from_mongo(record)

    def count(self, collection: str, query: dict | None = None) -> int:
        return self.collection(collection).count_documents(query or {})

    # raw access for import/export and checks

    def records(self, collection: str, query: dict | None = None,
                projection: dict | None = None) -> Iterator[dict]:
        yield from self.collection(collection).find(query or {}, projection).sort("_id", 1)

    def put_record(self, collection: str, record: dict) -> UpsertOutcome:
        """Upsert a raw record by `_id`; unchanged when an equal record is stored."""
        stored = self.collection(collection).find_one({"_id": record["_id"]})
        if stored == record:
            return "unchanged"
        self._replace(collection, record)
        return "updated" if stored else "new"

    def distinct(self, collection: str, field: str, query: dict | None = None) -> list:
        return self.collection(collection).distinct(field, query or {})
