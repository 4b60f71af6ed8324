"""The GraphQL operation a request runs, for its log line and metrics."""

from __future__ import annotations

from collections.abc import Iterator

from strawberry.extensions import SchemaExtension

from gateway.api.observability import requests
from gateway.auth.principal import (
    MemberPrincipal,
    OperatorPrincipal,
    PartnerPrincipal,
    Principal,
)


class RecordOperation(SchemaExtension):
    """Names the request's operation once its document parsed and validated (before that
    the request keeps the ``unparsed`` label: a refused document names nothing)."""

    def on_execute(self) -> Iterator[None]:
        record = requests.current()
        if record is not None:
            context = self.execution_context
            record.operation = requests.OPERATIONS.label(context.operation_name)
            record.operation_type = context.operation_type.value
        yield


def note_caller(principal: Principal) -> None:
    """Who the current request comes from: its kind and, for a partner's app, the partner."""
    record = requests.current()
    if record is None:
        return
    if isinstance(principal, PartnerPrincipal):
        record.caller, record.partner = "partner", principal.partner
    elif isinstance(principal, MemberPrincipal):
        record.caller = "member"
    elif isinstance(principal, OperatorPrincipal):
        record.caller = "operator"
