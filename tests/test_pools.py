"""Remote pools as an operator and a member meet them: the token a partner's pool needs, the
development reference partner the gateway serves itself, the `coalition remote` commands,
and rewards of a partner that keeps its points in its own system.

The configuration is written here (a hosted BrewBar and a remote NorthJet), not copied from
the demo, so that these tests do not change with the demo coalition. The reference partner
runs under uvicorn on 127.0.0.1 and the gateway reaches it over real HTTP.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.api.cli import main
from gateway.api.pools import remote_pools
from gateway.kernel.sealing import new_master_key
from gateway.remote.record import COMPLETED, PENDING
from gateway.remote.tables import remote_operations
from gateway.rewards.tables import reward_redemptions
from partners.config.coalition import DEMO_DIRECTORY, ConfigError, load_coalition
from partners.development.reference_faults import BY_KEY, TRANSACTIONS
from partners.development.reference_partner import ReferencePartner
from partners.remote.exceptions import RemoteUnknownMember
from tests.conftest import Clock, Gateway, start_gateway
from tests.operations import EARN, ENROL, codes, payload
from tests.test_remote_operations import (  # noqa: F401  (fixtures)
    NORTHJET,
    TIMEOUT,
    TOKEN,
    WALLETS,
    brewbar_stars,
    earn,
    member_at_northjet,
    northjet,
    operations,
    real_transactions,
    served,
)
from tests.test_rewards import redeem as redeem_reward
from tests.test_rewards import reward

VARIABLE = "COALITION_REMOTE_NORTHJET_TOKEN"
COALITION = 'name = "Pools coalition"\nsettlement_currency = "EUR"\n'
BREWBAR = """
slug = "brewbar"
name = "BrewBar Coffee"
point_value = "0.04"

[currency]
code = "STAR"
name = "stars"

[earn]
points_per_unit = "1"

[[conversions]]
to = "northjet"
rate = "4"
min_points = 1
effective_from = 2026-01-01
"""
NORTHJET_DEVELOPMENT = """
slug = "northjet"
name = "NorthJet"
point_value = "0.01"

[currency]
code = "NJP"
name = "jet points"

[earn]
points_per_unit = "1"

[pool]
hosted = "remote"
development = true
"""


def config(directory: Path, base_url: str | None) -> Path:
    """BrewBar (hosted) and NorthJet: served at ``base_url``, or by the gateway itself
    (``development = true``) when it is None. No sign-in: production accepts it."""
    directory.mkdir(exist_ok=True)
    (directory / "coalition.toml").write_text(COALITION)
    (directory / "brewbar.toml").write_text(BREWBAR)
    northjet = (
        NORTHJET_DEVELOPMENT
        if base_url is None
        else NORTHJET.format(base_url=base_url, timeout=TIMEOUT)
    )
    (directory / "northjet.toml").write_text(northjet)
    return directory


@pytest.fixture
def remote_dir(tmp_path: Path, served: tuple[ReferencePartner, str]) -> Path:
    return config(tmp_path / "config", served[1])


@pytest.fixture
async def gw(
    database_url: str,
    clock: Clock,
    remote_dir: Path,
    northjet: ReferencePartner,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Gateway]:
    monkeypatch.setenv(VARIABLE, TOKEN)
    async for gateway in start_gateway(
        database_url,
        clock,
        config_dir=str(remote_dir),
        hold_sweep_seconds=0,
        remote_retry_seconds=0,
    ):
        yield gateway


# ---- the token ------------------------------------------------------------------------------


@pytest.mark.parametrize("environ", [{}, {VARIABLE: ""}, {VARIABLE: "   "}, {"OTHER": TOKEN}])
def test_a_remote_pool_without_its_token_names_the_variable(
    remote_dir: Path, environ: dict[str, str]
) -> None:
    coalition = load_coalition(remote_dir)
    with pytest.raises(LookupError, match=VARIABLE) as caught:
        remote_pools(coalition, environ=environ)
    assert "'northjet'" in str(caught.value)


def test_the_token_is_read_from_the_process_environment_by_default(
    remote_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(VARIABLE, raising=False)
    with pytest.raises(LookupError, match=VARIABLE):
        remote_pools(load_coalition(remote_dir))


async def test_with_its_token_a_remote_pool_reaches_the_partner(
    remote_dir: Path, northjet: ReferencePartner
) -> None:
    # production=True too: only a development pool is refused there.
    pools, references = remote_pools(
        load_coalition(remote_dir), environ={VARIABLE: TOKEN}, production=True
    )
    try:
        assert set(pools) == {"northjet"} and references == {}
        assert await pools["northjet"].balance("NJ-1") == 1000
    finally:
        for pool in pools.values():
            await pool.aclose()


async def test_the_gateway_does_not_start_without_the_token(
    database_url: str, clock: Clock, remote_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(VARIABLE, raising=False)
    started = start_gateway(database_url, clock, config_dir=str(remote_dir), hold_sweep_seconds=0)
    with pytest.raises(LookupError, match=f"{VARIABLE} is not set"):
        async for _ in started:
            pytest.fail("the gateway started without the partner's token")


# ---- a development remote pool ----------------------------------------------------------------


async def test_a_development_remote_pool_is_refused_in_production(tmp_path: Path) -> None:
    coalition = load_coalition(config(tmp_path / "config", None))
    with pytest.raises(ConfigError, match=r"partner 'northjet'.*cannot run in production"):
        remote_pools(coalition, production=True)
    # Outside production it is served in-process, without a token.
    pools, references = remote_pools(coalition, environ={}, production=False)
    try:
        assert set(pools) == set(references) == {"northjet"}
        with pytest.raises(RemoteUnknownMember):  # it knows its opening members only
            await pools["northjet"].balance("anyone")
    finally:
        for pool in pools.values():
            await pool.aclose()


async def test_a_production_gateway_refuses_to_start_with_a_development_pool(
    database_url: str, clock: Clock, tmp_path: Path
) -> None:
    directory = config(tmp_path / "config", None)
    started = start_gateway(
        database_url,
        clock,
        config_dir=str(directory),
        environment="production",
        session_secret="s" * 32,
        master_key=new_master_key(),
        hold_sweep_seconds=0,
    )
    with pytest.raises(ConfigError, match="development remote pool cannot run in production"):
        async for _ in started:
            pytest.fail("a production gateway started with a development remote pool")


async def test_a_development_remote_pool_works_end_to_end(
    database_url: str, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(VARIABLE, raising=False)  # no token is needed
    directory = config(tmp_path / "config", None)
    async for gw in start_gateway(
        database_url, clock, config_dir=str(directory), hold_sweep_seconds=0
    ):
        enrol = {"input": {"partner": "northjet", "partnerCustomerId": "NJ-NEW-7"}}
        # The stand-in knows its own customers only, as a real partner does.
        refused = payload(await gw.gql(ENROL, enrol))
        assert [e["code"] for e in refused["userErrors"]] == ["UNKNOWN_CUSTOMER"]
        reference: ReferencePartner = gw.app.state.reference_partners["northjet"]
        reference.add_member("NJ-NEW-7")
        enrolled = payload(await gw.gql(ENROL, enrol))
        assert enrolled["userErrors"] == [] and enrolled["created"] is True
        member = enrolled["member"]["id"]
        # A new customer of the partner has a wallet with zero points.
        wallets = payload(await gw.gql(WALLETS, {"id": member}))["wallets"]
        assert {w["partner"]["slug"]: w["balance"] for w in wallets} == {
            "brewbar": 0,
            "northjet": 0,
        }
        variables = {"partner": "northjet", "member": {"id": member}, "points": 250}
        earned = payload(await gw.gql(EARN, {"input": {**variables, "idempotencyKey": "e-1"}}))
        assert earned["userErrors"] == []
        assert earned["wallet"]["balance"] == 250
        legs = {(leg["account"], leg["amount"]) for leg in earned["transfer"]["legs"]}
        assert legs == {("ISSUANCE", -250), ("REMOTE", 250)}
        again = payload(await gw.gql(EARN, {"input": {**variables, "idempotencyKey": "e-1"}}))
        assert again["idempotentReplay"] is True
        assert again["transfer"]["id"] == earned["transfer"]["id"]
        wallets = payload(await gw.gql(WALLETS, {"id": member}))["wallets"]
        assert {w["partner"]["slug"]: w["balance"] for w in wallets}["northjet"] == 250
        assert reference.balance_of("NJ-NEW-7") == 250
        assert len(reference.transactions) == 1
        assert [o.status for o in await operations(gw)] == [COMPLETED]


async def test_the_demo_hotel_knows_its_guests_only(database_url: str, clock: Clock) -> None:
    async for gw in start_gateway(database_url, clock, config_dir=str(DEMO_DIRECTORY)):
        enrol = {"input": {"partner": "harbour", "partnerCustomerId": "HH-9999"}}
        refused = payload(await gw.gql(ENROL, enrol))
        assert codes(refused) == ["UNKNOWN_CUSTOMER"] and refused["member"] is None
        assert refused["userErrors"][0]["field"] == ["input", "partnerCustomerId"]
        enrol["input"]["partnerCustomerId"] = "HH-4010"  # a guest not enrolled yet
        enrolled = payload(await gw.gql(ENROL, enrol))
        assert enrolled["userErrors"] == [] and enrolled["created"] is True
        wallets = payload(await gw.gql(WALLETS, {"id": enrolled["member"]["id"]}))["wallets"]
        assert {w["partner"]["slug"]: w["balance"] for w in wallets}["harbour"] == 3000


# ---- coalition remote resume | list ---------------------------------------------------------


async def cli(*args: str) -> int:
    """Run ``coalition`` as an operator would (it runs its own event loop)."""
    return await asyncio.to_thread(main, list(args))


async def due_now(gw: Gateway) -> None:
    """The CLI uses the real clock: make every pending operation due by it."""
    async with gw.service.engine.begin() as connection:
        await connection.execute(
            sa.update(remote_operations)
            .where(remote_operations.c.status == PENDING)
            .values(next_attempt_at=datetime(2000, 1, 1, tzinfo=UTC))
        )


def fail_a_whole_attempt(partner: ReferencePartner) -> None:
    """Both sends fail and so does the lookup by key: the outcome stays unknown."""
    partner.fail_next(TRANSACTIONS, "error", times=2)
    partner.fail_next(BY_KEY, "error")


@pytest.fixture
def cli_environment(database_url: str, remote_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("COALITION_CONFIG_DIR", str(remote_dir))
    monkeypatch.setenv("COALITION_ENV", "development")


async def test_remote_resume_finishes_a_pending_earn_and_list_shows_it(
    gw: Gateway,
    northjet: ReferencePartner,
    cli_environment: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    member = await member_at_northjet(gw)
    fail_a_whole_attempt(northjet)
    result = await earn(gw, member, 250, "till-9", "northjet")
    assert codes(result) == ["PARTNER_UNAVAILABLE"]
    (operation,) = await operations(gw)
    capsys.readouterr()

    assert await cli("remote", "list", "--status", "pending") == 0
    out = capsys.readouterr().out
    assert operation.id in out and "1 operation(s)." in out

    # The partner still fails: the operation stays pending and resume says so.
    fail_a_whole_attempt(northjet)
    await due_now(gw)
    assert await cli("remote", "resume") == 3
    assert "0 completed, 0 failed, 0 compensated, 1 pending" in capsys.readouterr().out
    northjet.wait_idle(10)
    assert northjet.balance_of("NJ-1") == 1000 and real_transactions(northjet) == []
    (still,) = await operations(gw)
    assert (still.status, still.attempts) == (PENDING, 2)

    # The partner answers again: resume completes it, and the partner is credited once.
    await due_now(gw)
    assert await cli("remote", "resume") == 0
    assert "1 completed, 0 failed, 0 compensated, 0 pending" in capsys.readouterr().out
    northjet.wait_idle(10)
    assert northjet.balance_of("NJ-1") == 1250
    assert len(real_transactions(northjet)) == 1
    (done,) = await operations(gw)
    assert done.status == COMPLETED
    assert done.remote_transaction_id == real_transactions(northjet)[0]["id"]

    assert await cli("remote", "list", "--status", "completed") == 0
    out = capsys.readouterr().out
    (line,) = [line for line in out.splitlines() if operation.id in line]
    assert "completed" in line and "earn" in line and "northjet->northjet" in line
    assert "1 operation(s)." in out
    assert await cli("remote", "list", "--status", "pending") == 0
    assert "0 operation(s)." in capsys.readouterr().out

    # Nothing is due any more: resuming again changes nothing.
    assert await cli("remote", "resume") == 0
    assert "0 completed, 0 failed, 0 compensated, 0 pending" in capsys.readouterr().out
    assert northjet.balance_of("NJ-1") == 1250 and len(real_transactions(northjet)) == 1

    # The member's retry with the same key now tells the outcome.
    retry = await earn(gw, member, 250, "till-9", "northjet")
    assert retry["userErrors"] == [] and retry["idempotentReplay"] is True
    assert northjet.balance_of("NJ-1") == 1250


async def test_remote_resume_leaves_an_operation_that_is_not_due(
    gw: Gateway,
    northjet: ReferencePartner,
    cli_environment: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    member = await member_at_northjet(gw)
    fail_a_whole_attempt(northjet)
    assert codes(await earn(gw, member, 250, "till-9", "northjet")) == ["PARTNER_UNAVAILABLE"]
    async with gw.service.engine.begin() as connection:
        await connection.execute(
            sa.update(remote_operations).values(next_attempt_at=datetime(2999, 1, 1, tzinfo=UTC))
        )
    northjet.reset({"NJ-1": 1000})
    capsys.readouterr()
    assert await cli("remote", "resume") == 3  # still pending, if not retried now
    assert "0 completed, 0 failed, 0 compensated, 0 pending" in capsys.readouterr().out
    assert northjet.calls == []


async def test_remote_commands_need_the_partners_token(
    remote_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("COALITION_CONFIG_DIR", str(remote_dir))
    monkeypatch.delenv(VARIABLE, raising=False)
    for action in ("list", "resume"):
        assert await cli("remote", action) == 2
        assert f"error: {VARIABLE} is not set" in capsys.readouterr().err


# ---- rewards of a remote partner ------------------------------------------------------------


async def test_a_remote_partners_reward_paid_with_hosted_points_does_not_call_the_partner(
    gw: Gateway, northjet: ReferencePartner
) -> None:
    member = await member_at_northjet(gw)
    assert (await earn(gw, member, 150, "stars", "brewbar"))["userErrors"] == []
    lounge = await reward(gw, "northjet", name="Lounge pass", pricePoints=400, value="4.00")
    northjet.reset({"NJ-1": 1000})  # forget the calls so far

    result = await redeem_reward(gw, lounge, member, "brewbar", "lounge-1")
    assert result["userErrors"] == [], result
    receipt = result["receipt"]
    assert receipt["paidWith"]["slug"] == "brewbar"
    assert (receipt["paidPoints"], receipt["pricePoints"]) == (100, 400)
    conversion = {
        (leg["partner"]["slug"], leg["account"], leg["amount"])
        for leg in receipt["conversion"]["legs"]
    }
    assert ("brewbar", "WALLET", -100) in conversion
    assert ("northjet", "REMOTE", 400) in conversion
    redemption = {
        (leg["partner"]["slug"], leg["account"], leg["amount"])
        for leg in receipt["redemption"]["legs"]
    }
    assert redemption == {("northjet", "REMOTE", -400), ("northjet", "REDEMPTION", 400)}
    assert northjet.calls == []
    assert await brewbar_stars(gw, member) == 50

    again = await redeem_reward(gw, lounge, member, "brewbar", "lounge-1")
    assert again["userErrors"] == [] and again["idempotentReplay"] is True
    assert northjet.calls == [] and await brewbar_stars(gw, member) == 50
    # The partner's own balance of the member was never touched.
    assert northjet.balance_of("NJ-1") == 1000
    wallets = payload(await gw.gql(WALLETS, {"id": member}))["wallets"]
    assert {w["partner"]["slug"]: w["balance"] for w in wallets} == {
        "brewbar": 50,
        "northjet": 1000,
    }


async def test_paying_for_a_reward_with_a_remote_pools_points_is_refused(
    gw: Gateway, northjet: ReferencePartner
) -> None:
    member = await member_at_northjet(gw)
    assert (await earn(gw, member, 150, "stars", "brewbar"))["userErrors"] == []
    lounge = await reward(gw, "northjet", name="Lounge pass", pricePoints=400, value="4.00")
    coffee = await reward(gw, "brewbar", name="Free coffee", pricePoints=20, value="2.80")
    northjet.reset({"NJ-1": 1000})

    for reward_id in (lounge, coffee):
        refused = await redeem_reward(gw, reward_id, member, "northjet", f"k-{reward_id}")
        assert codes(refused) == ["NOT_AVAILABLE_AT_REMOTE_POOL"]
        assert refused["receipt"] is None
        assert (
            "'northjet' keeps its points in its own system" in refused["userErrors"][0]["message"]
        )
    assert northjet.calls == []
    assert northjet.balance_of("NJ-1") == 1000
    assert await brewbar_stars(gw, member) == 150
    history = await gw.service.history(
        (await gw.service.enrol("northjet", "NJ-1")).member.id, None, None, 100
    )
    assert [t.kind.value for t in history] == ["earn"]
    async with gw.service.engine.connect() as connection:
        receipts = (await connection.execute(sa.select(reward_redemptions))).all()
    assert receipts == []
    # The member can still pay with stars afterwards: the refusal kept nothing.
    paid = await redeem_reward(gw, lounge, member, "brewbar", f"k-{lounge}")
    assert paid["userErrors"] == [] and paid["receipt"]["paidPoints"] == 100
