"""Keys at rest: the signing keys are sealed in the database, a gateway without the master
key cannot use them, and `coalition secrets rewrap` moves them and the webhook secrets to a
new master key."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from joserfc.jwk import RSAKey

from gateway.api.app import create_app
from gateway.api.cli import main
from gateway.api.settings import Settings
from gateway.auth.keys import KeyStore
from gateway.auth.tables import signing_keys
from gateway.kernel.database import create_engine
from gateway.kernel.sealing import Sealer, SealError, master_id, new_master_key, parse_master_key
from gateway.webhooks.secrets import sealed_secrets
from tests.conftest import Clock, start_gateway
from tests.webhooks_helpers import create

ME = "query { partners { slug } }"


@asynccontextmanager
async def running(database_url: str, clock: Clock, **settings: Any) -> AsyncIterator[Any]:
    """A gateway on the database as it is (``start_gateway`` would empty it first)."""
    app = create_app(
        Settings(
            database_url=database_url,
            demo_data=False,
            hold_sweep_seconds=0,
            jobs=False,
            **settings,
        ),
        clock=clock,
    )
    async with app.router.lifespan_context(app):
        yield app


async def stored(database_url: str) -> dict[str, str]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = (await connection.execute(sa.select(signing_keys))).all()
    finally:
        await engine.dispose()
    return {row.kid: row.private_jwk for row in rows}


async def sealed_in(app: Any) -> list[tuple[str, str, str]]:
    async with app.state.service.engine.connect() as connection:
        return await sealed_secrets(connection)


async def accepted(app: Any) -> bool:
    """Whether a token the app signs now is accepted by its own API."""
    token = await app.state.issuer.issue("cafe-test", None, "operator")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        response = await client.post(
            "/graphql", json={"query": ME}, headers={"authorization": f"Bearer {token}"}
        )
    return response.status_code == 200 and "errors" not in response.json()


async def test_signing_keys_are_unreadable_in_the_database_without_the_master_key(
    database_url: str, clock: Clock
) -> None:
    key = new_master_key()
    async for gateway in start_gateway(database_url, clock, master_key=key):
        await gateway.gql(ME)
    rows = await stored(database_url)
    assert len(rows) == 1
    [(kid, value)] = rows.items()
    assert value.startswith(f"sealed:v1:{master_id(parse_master_key(key))}:")
    for private_part in ('"d"', '"p"', '"q"', "RSA", kid):
        assert private_part not in value
    clear = json.loads(Sealer(parse_master_key(key)).open(value, f"signing_key:{kid}"))
    assert clear["kid"] == kid and "d" in clear  # what the master key alone gives back
    with pytest.raises(SealError):
        Sealer(parse_master_key(new_master_key())).open(value, f"signing_key:{kid}")
    # A gateway with another master key refuses to start rather than sign with a new key.
    with pytest.raises(SealError, match="not configured"):
        async with running(database_url, clock, master_key=new_master_key()):
            pytest.fail("a gateway started without the master key of its signing keys")


async def insert_clear_text_key(
    database_url: str, kid: str, at: Any, retire_others: bool = True
) -> None:
    """A key as an older version stored it (or as someone writing the table would)."""
    key = RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"})
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            if retire_others:
                await connection.execute(sa.update(signing_keys).values(retired_at=at))
            await connection.execute(
                sa.insert(signing_keys).values(
                    kid=kid, private_jwk=json.dumps(key.as_dict(private=True)), created_at=at
                )
            )
    finally:
        await engine.dispose()


async def test_a_key_stored_in_clear_text_is_never_used_until_sealed(
    database_url: str, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = new_master_key()
    async for gateway in start_gateway(database_url, clock, master_key=key):
        # Written into the table while a gateway runs: not loaded, not published.
        clock.now += timedelta(seconds=30)
        await insert_clear_text_key(database_url, "slipped-in", clock(), retire_others=False)
        clock.now += timedelta(seconds=30)
        jwks = (await gateway.client.get("/.well-known/jwks.json")).json()
        assert "slipped-in" not in {found["kid"] for found in jwks["keys"]}
        assert (await gateway.app.state.issuer.keys.current())[0] != "slipped-in"
    # A production gateway (which does not seal at start) refuses to start on it, and says
    # what to do.
    engine = create_engine(database_url)
    try:
        production = KeyStore(engine, clock, 600, Sealer(parse_master_key(key)))
        with pytest.raises(SealError, match="clear text: seal it with `coalition secrets rewrap`"):
            await production.start()
        monkeypatch.setenv("DATABASE_URL", database_url)
        monkeypatch.setenv("COALITION_MASTER_KEY", key)
        assert await asyncio.to_thread(main, ["secrets", "rewrap"]) == 0
        assert all(v.startswith("sealed:v1:") for v in (await stored(database_url)).values())
        await production.start()
        assert "slipped-in" in {found["kid"] for found in (await production.public_jwks())["keys"]}
    finally:
        await engine.dispose()


async def test_development_seals_an_older_versions_clear_text_key_at_start(
    database_url: str, clock: Clock
) -> None:
    key = new_master_key()
    async for _ in start_gateway(database_url, clock, master_key=key):
        pass
    await insert_clear_text_key(database_url, "legacy", clock())
    async with running(database_url, clock, master_key=key) as app:
        assert await accepted(app)
        assert (await app.state.issuer.keys.current())[0] == "legacy"
    assert all(value.startswith("sealed:v1:") for value in (await stored(database_url)).values())


async def test_rotating_the_master_key(
    database_url: str,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    old, new = new_master_key(), new_master_key()
    async for gateway in start_gateway(database_url, clock, master_key=old):
        hook = await create(gateway, "http://127.0.0.1:9/hook", ["points.earned"])
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("COALITION_MASTER_KEY", new)

    def cli(*args: str) -> int:
        return main(["secrets", *args])

    # Without the old key nothing can be moved, and nothing is written.
    assert await asyncio.to_thread(cli, "rewrap") == 1
    assert "sealed under a master key not configured" in capsys.readouterr().err
    # 1. Every process gets the new key, with the old one as previous.
    monkeypatch.setenv("COALITION_PREVIOUS_MASTER_KEYS", old)
    async with running(database_url, clock, master_key=new, previous_master_keys=(old,)) as app:
        assert await accepted(app)
        # 2. The values move to the new key while gateways run.
        assert await asyncio.to_thread(cli, "rewrap") == 0
        out = capsys.readouterr().out
        assert "signing keys: 1 re-wrapped" in out and "webhook secrets: 1 re-wrapped" in out
        assert await accepted(app)
    assert await asyncio.to_thread(cli, "status") == 0
    new_id = master_id(parse_master_key(new))
    out = capsys.readouterr().out
    assert f"signing keys: 1 under the current key {new_id}" in out
    assert f"webhook secrets: 1 under the current key {new_id}" in out
    # 3. The old key can go: a gateway with the new key alone works, one with the old fails.
    async with running(database_url, clock, master_key=new) as app:
        assert await accepted(app)
        [(_, context, sealed)] = await sealed_in(app)
        assert Sealer(parse_master_key(new)).open(sealed, context).decode() == hook["secret"]
    with pytest.raises(SealError):
        async with running(database_url, clock, master_key=old):
            pytest.fail("the old master key still opens the signing keys")
    assert await asyncio.to_thread(cli, "rewrap") == 0  # nothing left to move
    assert "0 re-wrapped" in capsys.readouterr().out
    # A CLI with the old key alone cannot add a signing key the others could not open.
    monkeypatch.setenv("COALITION_MASTER_KEY", old)
    monkeypatch.delenv("COALITION_PREVIOUS_MASTER_KEYS")
    assert await asyncio.to_thread(main, ["keys", "rotate"]) == 2
    assert "which is not configured" in capsys.readouterr().err
    assert len(await stored(database_url)) == 1


def test_a_new_master_key_and_bad_ones(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    assert main(["secrets", "new-master-key"]) == 0
    assert len(parse_master_key(capsys.readouterr().out)) == 32
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'secrets.db'}")
    monkeypatch.setenv("COALITION_MASTER_KEY", "too short")
    assert main(["secrets", "status"]) == 2
    assert "COALITION_MASTER_KEY: a master key is 32 random bytes" in capsys.readouterr().err
    monkeypatch.delenv("COALITION_MASTER_KEY")
    key_file = tmp_path / "master.key"
    key_file.write_text(new_master_key() + "\n")
    monkeypatch.setenv("COALITION_MASTER_KEY_FILE", str(key_file))
    assert main(["secrets", "status"]) == 0
    assert capsys.readouterr().out == "signing keys: none\nwebhook secrets: none\n"
    monkeypatch.setenv("COALITION_MASTER_KEY_FILE", str(tmp_path / "missing.key"))
    assert main(["secrets", "status"]) == 2
    assert "COALITION_MASTER_KEY_FILE: cannot read" in capsys.readouterr().err
