"""Persisted operations, in the shape of Apollo's automatic persisted queries.

A client may send ``extensions.persistedQuery = {"version": 1, "sha256Hash": <hex>}``:

- with the document's text (``query``) too: the text's SHA-256 must be the hash (else 400,
  ``PERSISTED_QUERY_HASH_MISMATCH``); the document is remembered and runs;
- without it: a remembered document runs; an unknown hash answers 200 with the error
  ``PersistedQueryNotFound`` (code ``PERSISTED_QUERY_NOT_FOUND``), and the client sends the
  request again with the text. Apollo's clients do this by themselves.

Each server process remembers the most recently used documents (``capacity``); a document
forgotten, or never sent to this process, is simply sent again. Parsing, validation and
costing are cached per document text (gateway/graphql/schema.py and cost.py), so a hash
saves the client sending, and the server reading, the text.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from typing import Any

NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
HASH_MISMATCH = "PERSISTED_QUERY_HASH_MISMATCH"
BAD_REQUEST = "BAD_REQUEST"
_HASH = re.compile("[0-9a-f]{64}")


class PersistedQueryError(Exception):
    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


class PersistedQueries:
    """The documents this process was sent with their hash, the most recently used kept."""

    def __init__(self, capacity: int = 2000) -> None:
        self.capacity = capacity
        self._documents: OrderedDict[str, str] = OrderedDict()

    def query(self, persisted: Any, query: Any) -> str:
        """The document a request with ``extensions.persistedQuery`` runs (``query``: the
        request's own text, if any); PersistedQueryError when there is none."""
        if not isinstance(persisted, dict) or persisted.get("version") != 1:
            raise PersistedQueryError(
                400, "`extensions.persistedQuery` must be {version: 1, sha256Hash}.", BAD_REQUEST
            )
        wanted = persisted.get("sha256Hash")
        if not isinstance(wanted, str) or not _HASH.fullmatch(wanted.lower()):
            raise PersistedQueryError(
                400, "`persistedQuery.sha256Hash` must be 64 hexadecimal digits.", BAD_REQUEST
            )
        wanted = wanted.lower()
        if isinstance(query, str) and query:
            if hashlib.sha256(query.encode("utf-8", "surrogatepass")).hexdigest() != wanted:
                raise PersistedQueryError(
                    400, "The query's SHA-256 is not `persistedQuery.sha256Hash`.", HASH_MISMATCH
                )
            self._remember(wanted, query)
            return query
        found = self._documents.get(wanted)
        if found is None:
            raise PersistedQueryError(200, "PersistedQueryNotFound", NOT_FOUND)
        self._documents.move_to_end(wanted)
        return found

    def _remember(self, digest: str, query: str) -> None:
        self._documents[digest] = query
        self._documents.move_to_end(digest)
        while len(self._documents) > self.capacity:
            self._documents.popitem(last=False)
