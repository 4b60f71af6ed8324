"""What one request did, as the request log line and the request metrics report it.

The middleware opens a record per request; the GraphQL endpoint, the authentication step
and the mutation payloads fill it in as the request goes (a context variable: resolvers
run in tasks that copy the context, and share the record it holds).
"""

from __future__ import annotations

import re
import threading
import uuid
from contextvars import ContextVar, Token
from dataclasses import dataclass, field

ANONYMOUS = "anonymous"  # an operation without a name
UNPARSED = "unparsed"  # a request refused before its document was parsed and validated
OTHER = "other"  # names past the cap
MAX_OPERATIONS = 200  # distinct operation names kept as labels, per process
MAX_NAME = 64

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@+=-]{1,128}")


def request_id(given: str | None) -> str:
    """The caller's ``X-Request-ID`` when it is well-formed (1-128 safe characters), else a
    new one."""
    if given is not None and _REQUEST_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


class OperationNames:
    """Bounded label values for operation names: the first ``cap`` distinct names (cut to
    ``MAX_NAME`` characters) are kept, later ones are ``other``."""

    def __init__(self, cap: int = MAX_OPERATIONS) -> None:
        self.cap = cap
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def label(self, name: str | None) -> str:
        if not name:
            return ANONYMOUS
        name = name[:MAX_NAME]
        if name in self._seen:
            return name
        with self._lock:
            if len(self._seen) >= self.cap:
                return OTHER
            self._seen.add(name)
        return name


OPERATIONS = OperationNames()


@dataclass
class RequestRecord:
    request_id: str
    graphql: bool = False
    operation: str = UNPARSED  # a bounded label (OperationNames), once the document parsed
    operation_type: str | None = None
    caller: str = "anonymous"  # member, partner, operator or anonymous
    partner: str | None = None
    outcome: str | None = None  # set by the GraphQL endpoint; else from the status
    user_errors: dict[str, int] = field(default_factory=dict)  # userErrors by code


_current: ContextVar[RequestRecord | None] = ContextVar("request_record", default=None)


def current() -> RequestRecord | None:
    return _current.get()


def begin(record: RequestRecord) -> Token[RequestRecord | None]:
    return _current.set(record)


def end(token: Token[RequestRecord | None]) -> None:
    _current.reset(token)


def outcome_of(status: int) -> str:
    """A request's outcome from its status alone (every route but /graphql)."""
    if status >= 500:
        return "error"
    return "rejected" if status >= 400 else "ok"
