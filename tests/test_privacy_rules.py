"""The rules of members' data rights, free of storage: who may erase whom, the forfeit's
legs, and what the export document's values become in JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from gateway.auth.principal import MemberPrincipal, OperatorPrincipal, PartnerPrincipal
from gateway.kernel.errors import DomainError
from gateway.ledger.rules import AccountCode, TransferKind, assert_balanced
from gateway.privacy.erasure import (
    FRESH_SIGN_IN,
    check_may_erase,
    pending_forfeit,
    wallet_forfeit,
)
from gateway.privacy.export import json_safe

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def member(member_id: str, signed_in: datetime | None) -> MemberPrincipal:
    return MemberPrincipal(
        member_id, "https://idp", "sub", False, authenticated_at=signed_in, proven_at=signed_in
    )


def refusal(principal: object, member_id: str = "m-1") -> str | None:
    try:
        check_may_erase(principal, member_id, NOW)  # type: ignore[arg-type]
    except DomainError as error:
        return error.code.value
    return None


def test_who_may_erase_whom():
    assert refusal(OperatorPrincipal("olivia", "https://idp")) is None
    assert refusal(member("m-1", NOW - FRESH_SIGN_IN)) is None
    assert refusal(member("m-1", NOW - FRESH_SIGN_IN - timedelta(seconds=1))) == (
        "REAUTHENTICATION_REQUIRED"
    )
    assert refusal(member("m-1", None)) == "REAUTHENTICATION_REQUIRED"
    # A token's iat (authenticated_at) is no proof of a sign-in: a refresh renews it.
    renewed = MemberPrincipal("m-1", "https://idp", "sub", False, authenticated_at=NOW)
    assert refusal(renewed) == "REAUTHENTICATION_REQUIRED"
    assert refusal(member("m-2", NOW)) == "ACCESS_DENIED"
    partner = PartnerPrincipal("skyway", "skyway-app", frozenset({"points:earn"}))
    assert refusal(partner) == "ACCESS_DENIED"


@pytest.mark.parametrize("legs", [wallet_forfeit("skyway", 40), pending_forfeit("skyway", 40)])
def test_forfeits_balance_and_end_in_breakage(legs):
    assert_balanced(legs)
    assert [leg.account for leg in legs][-1] is AccountCode.BREAKAGE and legs[-1].amount == 40


def test_the_document_is_json_safe():
    value = {"at": NOW, "rate": Decimal("0.25"), "kind": TransferKind.EXPIRY, "ids": ("a",)}
    assert json.loads(json.dumps(json_safe(value))) == {
        "at": "2026-06-01T12:00:00+00:00",
        "rate": "0.25",
        "kind": "expiry",
        "ids": ["a"],
    }
