"""Every root mutation leaves an audit entry: its effects by their events (the
``audit.events`` consumer), everything else here, directly.

``install`` wraps the resolver of each field of ``Mutation`` once, when the schema is built
(queries are not touched: no cost on reads). After the resolver: the outcome (``ok``;
``rejected`` or ``denied`` with the userErrors' codes; ``failed`` on an exception). A
mutation that succeeded and appended events (counted on the request's trace, see
``gateway.events.actor``) is recorded by those events alone, so a posting gets no extra
write; any other outcome, and a mutation that posts no event (catalogue changes, a replay,
unlinking...), is recorded here in a transaction of its own. ``ALWAYS``: the account's
security changes, recorded here even when they post events (a link that merges).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from inspect import isawaitable
from typing import Any

import strawberry
from strawberry import relay

from gateway.api.auditing import actor_of, record
from gateway.api.graphql.context import Context
from gateway.api.graphql.scalars import decode_identity_id
from gateway.audit.entries import detail_of, outcome_of
from gateway.audit.trail import AuditTrail
from gateway.events.actor import current_request

ALWAYS = frozenset({"startAccountLink", "completeAccountLink", "unlinkIdentity"})
# Which target a mutation is about when its input names several (the first found).
PRIORITY = ("Transfer", "Hold", "Reward", "Promotion", "Challenge")
_NODE_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")

Resolver = Callable[..., Any]


def install(schema: strawberry.Schema) -> None:
    """Wrap every mutation field's resolver (after any other replaced it: ``bulk``)."""
    mutation = schema._schema.mutation_type
    assert mutation is not None
    for name, field in mutation.fields.items():
        assert field.resolve is not None
        field.resolve = _audited(name, field.resolve)


def _audited(name: str, resolve: Resolver) -> Callable[..., Awaitable[Any]]:
    async def audited(source: Any, info: Any, **arguments: Any) -> Any:
        trace = current_request.get()
        before = trace.appended if trace is not None else 0
        try:
            result = resolve(source, info, **arguments)
            if isawaitable(result):
                result = await result
        except Exception as error:
            await _record(info.context, name, arguments, None, "failed", type(error).__name__)
            raise
        codes = _codes(result)
        outcome = outcome_of(codes)
        appended = trace.appended - before if trace is not None else 0
        if outcome != "ok" or appended == 0 or name in ALWAYS:
            await _record(info.context, name, arguments, result, outcome, detail_of(codes))
        return result

    return audited


def _codes(result: Any) -> list[str]:
    errors = getattr(result, "user_errors", None) or []
    return [str(getattr(error.code, "value", error.code)) for error in errors]


def _ours(key: str) -> bool:
    """An input's id of the gateway's own objects, not a partner's for its customer or
    purchase (personal data: never decoded, never kept)."""
    lowered = key.lower()
    return not any(word in lowered for word in ("customer", "purchase", "external", "reference"))


def _node(value: Any) -> tuple[str, str] | None:
    if not isinstance(value, str) or len(value) > 200:
        return None
    try:
        global_id = relay.GlobalID.from_id(value)
    except Exception:
        return None
    kind, node_id = global_id.type_name, global_id.node_id
    # An identity's id holds its issuer and subject: never kept (personal data).
    if kind == "Identity" or not _NODE_ID.fullmatch(node_id) or not kind.isalnum():
        return None
    return kind, node_id


def targets(arguments: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """The global ids an input names (kind -> id), and its partners and identity issuer."""
    found: dict[str, str] = {}
    named: dict[str, str] = {}
    pending: list[Mapping[str, Any]] = [arguments]
    while pending:
        current = pending.pop(0)
        for key, value in current.items():
            if isinstance(value, Mapping) and len(found) < 10:
                pending.append(value)
            elif key in ("partner", "fromPartner", "toPartner") and isinstance(value, str):
                named.setdefault(key, value)
            elif key.lower().endswith("id") and isinstance(value, str) and _ours(key):
                identity = decode_identity_id(value) if key == "identityId" else None
                if identity is not None:
                    named["issuer"] = identity[0]
                    continue
                node = _node(value)
                if node is not None:
                    found.setdefault(node[0], node[1])
    return found, named


def created(result: Any) -> dict[str, str]:
    """The objects a payload answers with (a reward just created...): kind -> id."""
    found: dict[str, str] = {}
    for value in vars(result).values() if hasattr(result, "__dict__") else ():
        if isinstance(value, relay.Node):
            node_id = str(getattr(value, value.resolve_id_attr(), ""))
            if _NODE_ID.fullmatch(node_id):
                found.setdefault(type(value).__name__, node_id)
    return found


async def _record(
    context: Context,
    name: str,
    arguments: Mapping[str, Any],
    result: Any,
    outcome: str,
    detail: str | None,
) -> None:
    found, named = targets(arguments)
    if not found and result is not None:
        found = created(result)
    kind = next((k for k in PRIORITY if k in found), None) or next(iter(found), None)
    target = None if kind is None else (_snake(kind), found[kind])
    member_id = found.get("Member") or context.access.member_id
    partners = context.service.coalition.partners
    partner = next((p for p in named.values() if p in partners), None)
    if partner is None:
        partner = context.access.partner
    data = {"issuer": named["issuer"][:200]} if "issuer" in named else None
    await record(
        AuditTrail(context.service.uow),
        context.service.clock(),
        actor_of(context.principal),
        name,
        outcome,
        target=target,
        member_id=member_id if member_id and len(member_id) == 36 else None,
        partner=partner,
        detail=detail,
        data=data,
    )


def _snake(kind: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", kind).lower()
