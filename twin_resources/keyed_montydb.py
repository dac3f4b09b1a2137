"""montydb's sqlite storage, reading a document by `_id` through sqlite's primary key.

montydb answers every query, `{"_id": x}` included, by decoding the whole collection in Python, so each
upsert cost more as the warehouse grew (13 ms at the first post, 109 ms at the 3,000th). Nearly all of the
warehouse's per-document work is by `_id`; this storage serves exactly those lookups from the key
(`SELECT ... WHERE k = ?`) and leaves every other query to montydb as it is. montydb finds a storage by
module name (`set_storage(..., storage="twin_resources.keyed_montydb")`); it takes the first storage class
of the module, so this module defines one and imports montydb's by module.
"""

from montydb.collection import MontyCollection
from montydb.cursor import MontyCursor
from montydb.engine.queries import QueryFilter
from montydb.storage import sqlite as monty_sqlite
from montydb.types import bson

STORAGE_NAME = __name__
_SELECT_BY_KEY = "SELECT v FROM [{}] WHERE k = ?;"


def _key_lookup(spec) -> tuple[bool, object]:
    """(True, the id) when `spec` selects one document by a plain `_id` value, else (False, None)."""
    if not isinstance(spec, dict) or set(spec) != {"_id"}:
        return False, None
    value = spec["_id"]
    if isinstance(value, dict) and any(str(key).startswith("$") for key in value):
        return False, None  # an operator ({"$in": [...]}): montydb's own scan
    return True, value


class KeyedCursor(monty_sqlite.SQLiteCursor):
    def __init__(self, collection, subject):
        super().__init__(collection, subject)
        self._subject = subject

    def query(self, max_scan):
        by_key, value = _key_lookup(getattr(self._subject, "_spec", None))
        if not by_key:
            return super().query(max_scan)
        with self._conn._connect(self._col_path) as connection:  # montydb's own connection settings
            rows = connection.execute(_SELECT_BY_KEY.format(monty_sqlite.SQLITE_RECORD_TABLE),
                                      (bson.id_encode(value),)).fetchall()
        return (self._decode_doc(row[0]) for row in rows)


class KeyedCollection(monty_sqlite.SQLiteCollection):
    pass


class KeyedDatabase(monty_sqlite.SQLiteDatabase):
    pass


class KeyedSQLiteStorage(monty_sqlite.SQLiteStorage):
    pass


KeyedSQLiteStorage.contractor_cls = KeyedDatabase
KeyedDatabase.contractor_cls = KeyedCollection
KeyedCollection.contractor_cls = KeyedCursor


class KeyedMontyCollection(MontyCollection):
    """A collection whose updates and replacements hand their filter to the storage, so a filter by `_id`
    reaches the key lookup (montydb's own scan passes an unfiltered cursor). Otherwise montydb's method."""

    def _internal_scan_query(self, query_spec):
        queryfilter = QueryFilter(query_spec)
        documents = self._storage.query(MontyCursor(self, filter=query_spec), 0)
        for document in documents:
            if queryfilter(document):
                matched = queryfilter.fieldwalker
                yield matched  # montydb's protocol: once to test update-or-insert, once to start updating
                yield matched
                break
        for document in documents:  # the rest, for update_many
            if queryfilter(document):
                yield queryfilter.fieldwalker
