"""Failures of the service rather than of the request: the database is lost, unreachable,
too slow or too busy. Each has a stable code and tells the caller to retry (with the same
idempotency key, so that what did commit is replayed, never posted twice)."""

from __future__ import annotations

from typing import ClassVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from gateway.kernel.unit_of_work import sqlstate

RETRY = (
    "Retry with the same idempotency key: a posting that was made is answered as a replay, "
    "never made twice."
)
QUERY_CANCELED = "57014"  # statement_timeout (or a cancel request)
# Connection exceptions, the server shutting down or starting up, too many connections.
UNAVAILABLE_SQLSTATES = {"08000", "08001", "08003", "08004", "08006", "57P01", "57P02", "57P03"}
UNAVAILABLE_SQLSTATES |= {"53300"}


class ServiceFailure(Exception):
    code: ClassVar[str]
    retry_after: ClassVar[int] = 1  # seconds, for `Retry-After` and extensions.retryAfter

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def extensions(self) -> dict[str, object]:
        """graphql-core copies these into a GraphQLError raised from this exception."""
        return {"code": self.code, "retryAfter": self.retry_after}


class OutcomeUnknown(ServiceFailure):
    code = "OUTCOME_UNKNOWN"


class DatabaseUnavailable(ServiceFailure):
    code = "DATABASE_UNAVAILABLE"
    retry_after = 5


class ServiceBusy(ServiceFailure):
    code = "SERVICE_BUSY"
    retry_after = 2


class StatementTimeout(ServiceFailure):
    code = "STATEMENT_TIMEOUT"
    retry_after = 5


def classify(error: BaseException | None) -> ServiceFailure | None:
    """The service failure ``error`` is, or None for any other exception."""
    if error is None or isinstance(error, ServiceFailure):
        return error
    if isinstance(error, PoolTimeout):
        return ServiceBusy(
            "The gateway is busy: no database connection came free in time. Try again in a "
            f"moment. {RETRY}"
        )
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return OutcomeUnknown(
                "The connection to the database was lost while answering: whether this "
                f"call's changes were committed is unknown. {RETRY}"
            )
        code = sqlstate(error)
        if code == QUERY_CANCELED:
            return StatementTimeout(
                "The database cancelled a statement that ran too long; ask for less (smaller "
                f"pages, fewer fields) if this was a query. {RETRY}"
            )
        if code in UNAVAILABLE_SQLSTATES:
            return _unavailable()
        return None
    # Raised by the driver while connecting, before anything was sent.
    if isinstance(error, ConnectionError):
        return _unavailable()
    return None


def _unavailable() -> DatabaseUnavailable:
    return DatabaseUnavailable(f"The database cannot be reached now. Try again shortly. {RETRY}")
