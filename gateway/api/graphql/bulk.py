"""`earnPointsBulk`: a point-of-sale batch of up to 10,000 purchases in one call.

Strawberry turns each input object into its dataclass through generic, per-field type
resolution: some 70 µs a line, most of a 10,000-line call. graphql-core has coerced and
checked the variables by then, so ``install`` serves the field from those values directly
(``earn_points_bulk_raw``), building the same input objects by hand: the schema, the checks
and the answer are the field's own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping, Sequence
from datetime import datetime
from typing import Any

import strawberry

from gateway.api.graphql.access import check_member
from gateway.api.graphql.context import Info
from gateway.api.graphql.earning import programme
from gateway.api.graphql.payloads import IDEMPOTENCY_KEY, MemberReferenceInput, UserError
from gateway.api.graphql.purchases import AS_PURCHASE, EarnAward, PurchaseInput, PurchaseLineInput
from gateway.api.graphql.scalars import Int64
from gateway.api.graphql.types import Transfer
from gateway.earning.bulk import MAX_BULK, BulkLine
from gateway.earning.purchases import Earned
from gateway.kernel.errors import DomainError, ErrorCode
from gateway.kernel.validation import invalid
from gateway.ledger.records import MemberRef

FIELD = "earnPointsBulk"


@strawberry.input(description="One purchase of a batch: points, or a purchase.")
class BulkEarnLineInput:
    member: MemberReferenceInput
    idempotency_key: str = strawberry.field(description=IDEMPOTENCY_KEY)
    points: Int64 | None = None
    purchase: PurchaseInput | None = None
    reason: str | None = None
    occurred_at: datetime | None = strawberry.field(
        default=None,
        description="When the purchase happened (with its UTC offset; at most 365 days ago): "
        "the earning rules in force then apply. Omitted: now. Part of the request an "
        "idempotency key answers for.",
    )


@strawberry.input
class EarnPointsBulkInput:
    partner: str
    lines: list[BulkEarnLineInput] = strawberry.field(description="At most 10,000.")


@strawberry.type(description="The outcome of one line of a batch, in the batch's order.")
class BulkEarnResult:
    index: int
    transfer: Transfer | None = None
    breakdown: list[EarnAward] | None = None
    pending: bool = False
    idempotent_replay: bool = False
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class EarnPointsBulkPayload:
    results: list[BulkEarnResult] = strawberry.field(default_factory=list)
    succeeded: Int64 = 0
    failed: Int64 = 0
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Errors of the whole call; line errors are per line."
    )


async def earn_points_bulk(
    info: Info, partner: str, lines: Sequence[BulkEarnLineInput]
) -> EarnPointsBulkPayload:
    """The batch earned, one result per line in order; errors of the call in the payload."""
    try:
        info.context.access.act_at(partner, "points:earn")
        if len(lines) > MAX_BULK:
            raise DomainError(
                ErrorCode.TOO_MANY_LINES,
                f"At most {MAX_BULK} purchases per call; this one has {len(lines)}.",
                ("lines",),
            )
        refused: dict[int, DomainError] = {}
        batch: list[BulkLine] = []
        for index, line in enumerate(lines):
            try:
                ref = line.member.resolve(partner)
            except DomainError as error:
                refused[index] = error
                ref = MemberRef(id="")
            amount, parts = line.purchase.parts() if line.purchase else (None, [])
            batch.append(
                BulkLine(
                    ref,
                    line.idempotency_key,
                    line.points,
                    amount,
                    parts,
                    line.reason,
                    line.occurred_at,
                )
            )
        refused.update(await _unreachable(info, batch, refused))
        for index, line in enumerate(lines):
            if line.points is None and line.purchase is None:
                refused.setdefault(index, invalid("points", "Give points or a purchase."))
        chosen = [i for i in range(len(batch)) if i not in refused]
        answers = await programme(info).earn_bulk(partner, [batch[i] for i in chosen])
    except DomainError as error:
        return EarnPointsBulkPayload(user_errors=UserError.of(error))
    outcome: dict[int, Earned | DomainError] = {
        **refused,
        **dict(zip(chosen, answers, strict=True)),
    }
    results: list[BulkEarnResult] = []
    failed = 0
    for index in range(len(batch)):
        answer = outcome[index]
        if isinstance(answer, DomainError):
            failed += 1
            placed = answer.placed(AS_PURCHASE).within("lines", str(index))
            results.append(BulkEarnResult(index=index, user_errors=UserError.of(placed)))
            continue
        results.append(
            BulkEarnResult(
                index=index,
                transfer=Transfer.of(answer.posting.transfer),
                breakdown=[EarnAward.of(a) for a in answer.awards],
                pending=answer.pending,
                idempotent_replay=answer.posting.replayed,
            )
        )
    return EarnPointsBulkPayload(results=results, succeeded=len(results) - failed, failed=failed)


async def _unreachable(
    info: Info, batch: Sequence[BulkLine], refused: Mapping[int, DomainError]
) -> dict[int, DomainError]:
    """The lines naming a member the caller may not reach (``check_member``), checked
    together so that the request's loaders read them in one batch."""
    if info.context.access.is_operator:
        return {}
    indexes = [i for i in range(len(batch)) if i not in refused]

    async def check(index: int) -> DomainError | None:
        try:
            await check_member(info, batch[index].member)
        except DomainError as error:
            return error
        return None

    found = await asyncio.gather(*(check(i) for i in indexes))
    return {i: error for i, error in zip(indexes, found, strict=True) if error is not None}


def _line(raw: Mapping[str, Any]) -> BulkEarnLineInput:
    member, purchase = raw["member"], raw.get("purchase")
    return BulkEarnLineInput(
        member=MemberReferenceInput(
            id=member.get("id", strawberry.UNSET),
            partner_customer_id=member.get("partnerCustomerId", strawberry.UNSET),
        ),
        idempotency_key=raw["idempotencyKey"],
        points=raw.get("points"),
        purchase=None
        if purchase is None
        else PurchaseInput(
            amount=purchase.get("amount"),
            lines=[
                PurchaseLineInput(
                    amount=line["amount"], sku=line.get("sku"), category=line.get("category")
                )
                for line in purchase.get("lines") or ()
            ],
        ),
        reason=raw.get("reason"),
        occurred_at=raw.get("occurredAt"),
    )


def earn_points_bulk_raw(
    _source: Any, info: Info, input: Mapping[str, Any]
) -> Awaitable[EarnPointsBulkPayload]:
    """The field's resolver over graphql-core's coerced arguments (see the docstring)."""
    return earn_points_bulk(info, input["partner"], [_line(raw) for raw in input["lines"]])


def install(schema: strawberry.Schema) -> None:
    """Serve `earnPointsBulk` with ``earn_points_bulk_raw`` (``schema._schema`` is
    graphql-core's schema that strawberry built)."""
    mutation = schema._schema.mutation_type
    assert mutation is not None and FIELD in mutation.fields
    mutation.fields[FIELD].resolve = earn_points_bulk_raw
