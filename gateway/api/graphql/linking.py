"""Linking from native apps, and unlinking: the GraphQL side of a member's identities."""

from __future__ import annotations

from datetime import datetime

import strawberry

from gateway.api.authenticate import authenticated_at, proof_of
from gateway.api.graphql.context import Info
from gateway.api.graphql.members import Member
from gateway.api.graphql.payloads import UserError
from gateway.api.graphql.scalars import decode_identity_id, encode_id
from gateway.auth.errors import InvalidToken
from gateway.auth.principal import MemberPrincipal
from gateway.kernel.errors import DomainError, ErrorCode
from gateway.members.records import FlowUse
from gateway.members.rules import fresh_for_link, recently_signed_in


@strawberry.type
class StartAccountLinkPayload:
    nonce: str | None = strawberry.field(
        default=None,
        description="Put this in the `nonce` of the sign-in at the other partner's provider, "
        "then give the ID token to `completeAccountLink`. Single use.",
    )
    expires_at: datetime | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class CompleteAccountLinkInput:
    id_token: str = strawberry.field(
        description="An ID token from another partner's provider carrying the nonce from "
        "`startAccountLink`."
    )


@strawberry.type
class CompleteAccountLinkPayload:
    member: Member | None = None
    merged_member_ids: list[strawberry.ID] = strawberry.field(
        default_factory=list,
        description="Members the identity already belonged to, now merged into yours: "
        "their points moved to you and their ids resolve to you.",
    )
    already_linked: bool = False
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class UnlinkIdentityInput:
    identity_id: strawberry.ID = strawberry.field(description="`Identity.id` of the sign-in.")


@strawberry.type
class UnlinkIdentityPayload:
    member: Member | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


def _recent_member(info: Info) -> str:
    """The signed-in member, who must have signed in within the last 10 minutes: linking
    and unlinking change who can act for the account."""
    member_id = info.context.access.require_member()
    principal = info.context.principal
    assert isinstance(principal, MemberPrincipal)
    if not recently_signed_in(principal, info.context.service.clock()):
        raise DomainError(
            ErrorCode.REAUTHENTICATION_REQUIRED,
            "Linking or unlinking a sign-in needs a sign-in from the last 10 minutes: sign "
            "in again and retry.",
        )
    return member_id


async def _me(info: Info) -> Member | None:
    member_id = info.context.access.member_id
    record = await info.context.loaders.members.load(member_id) if member_id else None
    return Member.of(record) if record else None


@strawberry.type
class LinkMutations:
    @strawberry.mutation(
        description="A signed-in member starts linking another partner's sign-in from a "
        "native app: returns a short-lived, single-use nonce bound to the member."
    )
    async def start_account_link(self, info: Info) -> StartAccountLinkPayload | None:
        try:
            member_id = _recent_member(info)
        except DomainError as error:
            return StartAccountLinkPayload(user_errors=UserError.of(error))
        nonce, expires_at = await info.context.identity.start_native_link(member_id)
        return StartAccountLinkPayload(nonce=nonce, expires_at=expires_at)

    @strawberry.mutation(
        description="Finish a link with an ID token from the other partner's provider. If "
        "that sign-in already belongs to another member, the same person has proven both: "
        "the other member is merged into the signed-in one."
    )
    async def complete_account_link(
        self, info: Info, input: CompleteAccountLinkInput
    ) -> CompleteAccountLinkPayload | None:
        try:
            member_id = info.context.access.require_member()
            authenticator = info.context.authenticator
            try:
                provider = authenticator.providers.for_token(input.id_token)
                claims = await provider.verify(input.id_token)
            except InvalidToken as error:
                raise DomainError(
                    ErrorCode.INVALID_TOKEN,
                    f"The ID token was refused: {error.reason}.",
                    ("id_token",),
                ) from None
            nonce = claims.get("nonce")
            link = None
            if isinstance(nonce, str):
                link = await info.context.identity.pending_link(nonce, member_id)
            if link is None:
                raise DomainError(
                    ErrorCode.LINK_INVALID,
                    "The token's nonce is not a link you started, or it was used or expired; "
                    "start the link again.",
                    ("id_token",),
                )
            assert isinstance(nonce, str)
            if not fresh_for_link(authenticated_at(claims), link.created_at):
                await info.context.identity.discard_link(nonce, member_id)
                raise DomainError(
                    ErrorCode.REAUTHENTICATION_REQUIRED,
                    "The ID token does not show a sign-in at the provider made for this link "
                    "(its auth_time is missing or older than the link): start the link again "
                    "and have the provider ask for the sign-in afresh (prompt=login, "
                    "max_age=0).",
                    ("id_token",),
                )
            # The nonce is used up by the link's own transaction: only if the link succeeds.
            flow = FlowUse(nonce, ("native_link",), member_id)
            linked = await info.context.identity.link(member_id, proof_of(provider, claims), flow)
        except DomainError as error:
            return CompleteAccountLinkPayload(user_errors=UserError.of(error))
        info.context.loaders.members.clear_all()
        record = await info.context.loaders.members.load(linked.member_id)
        return CompleteAccountLinkPayload(
            member=Member.of(record) if record else None,
            merged_member_ids=[strawberry.ID(encode_id("Member", m)) for m in linked.merged],
            already_linked=linked.already,
        )

    @strawberry.mutation(
        description="Remove a linked sign-in from your account. The last one cannot be removed."
    )
    async def unlink_identity(
        self, info: Info, input: UnlinkIdentityInput
    ) -> UnlinkIdentityPayload | None:
        try:
            member_id = _recent_member(info)
            pair = decode_identity_id(str(input.identity_id))
            if pair is None:
                raise DomainError(ErrorCode.UNKNOWN_IDENTITY, "No such identity.", ("identity_id",))
            await info.context.identity.unlink(member_id, *pair)
        except DomainError as error:
            return UnlinkIdentityPayload(user_errors=UserError.of(error))
        return UnlinkIdentityPayload(member=await _me(info))
