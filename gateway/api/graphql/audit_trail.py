"""The audit trail over GraphQL: ``auditTrail`` (operators, with filters), ``myAuditTrail``
(a signed-in member: the entries about their own account) and the types ``Transfer.madeBy``
shares. Partner apps see neither (least privilege: the trail names other callers)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry
from strawberry import relay

from gateway.api.graphql import cursors
from gateway.api.graphql.context import Info
from gateway.api.graphql.errors import ArgumentError
from gateway.api.graphql.scalars import decode_member_id, encode_id
from gateway.audit.entries import Actor, Entry
from gateway.audit.store import Filters, StoredEntry
from gateway.audit.trail import AuditTrail
from gateway.auth.policy import denied

MAX_PAGE = 100
MAX_TEXT = 200


@strawberry.enum(description="Who acted.")
class AuditActorKind(Enum):
    MEMBER = "member"
    PARTNER_CLIENT = "partner_client"  # a partner's app, by its OAuth client
    OPERATOR = "operator"  # a person with the operator role, or the CLI's user
    OPERATOR_CLIENT = "operator_client"
    JOB = "job"  # the gateway's own jobs (expiry, maturation, ...)
    ANONYMOUS = "anonymous"


@strawberry.enum(description="How an action ended.")
class AuditOutcome(Enum):
    OK = "ok"
    REJECTED = "rejected"  # refused with userErrors (codes in `detail`)
    DENIED = "denied"  # the caller may not (ACCESS_DENIED, STEP_UP_REQUIRED...)
    FAILED = "failed"  # an unexpected error


def shown(info: Info, actor: Actor) -> Actor:
    """``actor`` as the caller may see it: operators see who each operator and client is;
    members and partner apps see "operator", and no other partner's client."""
    access = info.context.access
    if access.is_operator:
        return actor
    if actor.kind in ("operator", "operator_client"):
        return Actor(actor.kind, "operator")
    if actor.client_id is not None and access.partner != actor.partner:
        return Actor(actor.kind, actor.id)
    return actor


@strawberry.type(
    description="Who acted: a member, a partner's app, an operator, a job. Members and "
    "partner apps see an operator as `operator`, without who."
)
class AuditActor:
    actor: strawberry.Private[Actor]

    @strawberry.field
    def kind(self) -> AuditActorKind:
        return AuditActorKind(self.actor.kind)

    @strawberry.field(
        description="`member:<member id>`, `partner:<slug>`, `operator:<subject or client "
        "id>` (`operator:cli:<user>` from the CLI), `system:<job>` or `anonymous`."
    )
    def id(self) -> str:
        return self.actor.id

    @strawberry.field(description="The partner of a partner's app.")
    def partner(self) -> str | None:
        return self.actor.partner

    @strawberry.field(description="The OAuth client of a partner's app or operator client.")
    def client_id(self) -> str | None:
        return self.actor.client_id


@strawberry.type(description="What an action was about.")
class AuditTarget:
    kind: str = strawberry.field(
        description="transfer, member, reward, hold, settlement_period, configuration_change..."
    )
    id: str = strawberry.field(description="Its id: a transfer's number, a member's UUID...")


@strawberry.type(description="Who made a transfer, in which request.")
class MadeBy:
    entry: strawberry.Private[Entry]

    @strawberry.field
    def actor(self, info: Info) -> AuditActor:
        return AuditActor(actor=shown(info, self.entry.actor))

    @strawberry.field(description="The `X-Request-ID` of the request that made it, if any.")
    def request_id(self) -> str | None:
        return self.entry.request_id


@strawberry.type(description="One action recorded in the audit trail (append-only).")
class AuditEntry:
    stored: strawberry.Private[StoredEntry]

    @strawberry.field
    def occurred_at(self) -> datetime:
        return self.stored.entry.occurred_at

    @strawberry.field
    def actor(self, info: Info) -> AuditActor:
        return AuditActor(actor=shown(info, self.stored.entry.actor))

    @strawberry.field(
        description="An event type (`points.earned`, `transfer.reversed`, `member.merged`, "
        "...), a mutation's name (`createReward`, `unlinkIdentity`...) or `sign_in`, "
        "`sign_out`, `link`, `imports.upload`, `client.create`, `client.rotate`, `client.disable`, "
        "`keys.rotate`, `secrets.rewrap`, `members.export`, `webhook_endpoint.disable` (by "
        "the webhook sender)."
    )
    def action(self) -> str:
        return self.stored.entry.action

    @strawberry.field
    def target(self) -> AuditTarget | None:
        entry = self.stored.entry
        if entry.target_kind is None or entry.target_id is None:
            return None
        return AuditTarget(kind=entry.target_kind, id=entry.target_id)

    @strawberry.field(description="The global id of the member it is about.")
    def member_id(self) -> strawberry.ID | None:
        member_id = self.stored.entry.member_id
        return None if member_id is None else strawberry.ID(encode_id("Member", member_id))

    @strawberry.field
    def partner(self) -> str | None:
        return self.stored.entry.partner

    @strawberry.field
    def outcome(self) -> AuditOutcome:
        return AuditOutcome(self.stored.entry.outcome)

    @strawberry.field(description="Short: the userErrors' codes, a refusal's reason.")
    def detail(self) -> str | None:
        return self.stored.entry.detail

    @strawberry.field
    def request_id(self) -> str | None:
        return self.stored.entry.request_id


@strawberry.type
class AuditEntryEdge:
    cursor: str
    node: AuditEntry


@strawberry.type(description="A page of audit entries, newest first.")
class AuditEntryConnection:
    edges: list[AuditEntryEdge]
    page_info: relay.PageInfo


@strawberry.input(description="Keep the entries that match every field given.")
class AuditTrailFilter:
    member_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="About this member (global id), and the members merged into them.",
    )
    actor: str | None = strawberry.field(default=None, description="`AuditActor.id`, exactly.")
    actor_kind: AuditActorKind | None = None
    action: str | None = None
    since: datetime | None = strawberry.field(default=None, description="Occurred at or after.")
    until: datetime | None = strawberry.field(default=None, description="Occurred before.")


def _text(value: str | None, name: str) -> str | None:
    if value is not None and (not value or len(value) > MAX_TEXT or not value.isprintable()):
        raise ArgumentError(f"`{name}` must be 1 to {MAX_TEXT} printable characters.")
    return value


async def about(info: Info, member_id: str) -> tuple[str, ...]:
    """A member's id (a merged member's: its survivor's) and those merged into it: a
    person's whole trail."""
    record = await info.context.loaders.members.load(member_id)
    survivor = record.id if record is not None else member_id
    return (survivor, *await info.context.service.merged_into(survivor))


async def filters_of(info: Info, given: AuditTrailFilter | None) -> Filters:
    """The filter, checked: a bad one is BAD_USER_INPUT, never a database error."""
    if given is None:
        return Filters()
    member_ids: tuple[str, ...] = ()
    if given.member_id is not None:
        member_id = decode_member_id(str(given.member_id))
        if member_id is None:
            raise ArgumentError("`memberId` is not a member's global id.")
        member_ids = await about(info, member_id)
    if given.since is not None and given.until is not None and given.since >= given.until:
        raise ArgumentError("`since` must be before `until`.")
    return Filters(
        member_ids=member_ids,
        actor=_text(given.actor, "actor"),
        actor_kind=given.actor_kind.value if given.actor_kind is not None else None,
        action=_text(given.action, "action"),
        since=given.since,
        until=given.until,
    )


async def page(info: Info, filters: Filters, first: int, after: str | None) -> AuditEntryConnection:
    if not 0 <= first <= MAX_PAGE:
        raise ArgumentError(f"`first` must be between 0 and {MAX_PAGE}.")
    before = cursors.position("audit", after)
    found = await AuditTrail(info.context.service.uow).query(filters, before, first + 1)
    edges = [
        AuditEntryEdge(cursor=cursors.cursor("audit", stored.id), node=AuditEntry(stored=stored))
        for stored in found[:first]
    ]
    return AuditEntryConnection(
        edges=edges,
        page_info=relay.PageInfo(
            has_next_page=len(found) > first,
            has_previous_page=before is not None,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
    )


@strawberry.type
class AuditQueries:
    @strawberry.field(
        description="The audit trail, newest first, at most 100 per page (operators only)."
    )
    async def audit_trail(
        self,
        info: Info,
        filter: AuditTrailFilter | None = None,
        first: int = 20,
        after: str | None = None,
    ) -> AuditEntryConnection:
        info.context.access.require_operator()
        return await page(info, await filters_of(info, filter), first, after)

    @strawberry.field(
        description="The entries about the signed-in member's own account, newest first, "
        "at most 100 per page (members only)."
    )
    async def my_audit_trail(
        self, info: Info, first: int = 20, after: str | None = None
    ) -> AuditEntryConnection:
        member_id = info.context.access.member_id
        if member_id is None:
            raise denied("Only a signed-in member has an audit trail of their own.")
        return await page(info, Filters(member_ids=await about(info, member_id)), first, after)
