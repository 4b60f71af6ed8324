"""/livez answers while the process runs; /readyz only with the database reachable and its
schema at the migrations' head (or past it, during a rolling update)."""

from __future__ import annotations

import httpx
from sqlalchemy import text
from starlette.applications import Starlette

from gateway.api.observability.probes import Probes
from gateway.kernel.database import create_engine
from tests.conftest import Gateway


async def test_live_and_ready(gateway: Gateway):
    live = await gateway.client.get("/livez")
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    ready = await gateway.client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ok"
    health = await gateway.client.get("/healthz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})


async def test_not_ready_while_migrations_are_behind(gateway: Gateway):
    engine = gateway.service.engine
    async with engine.begin() as connection:
        head = await connection.scalar(text("SELECT version_num FROM alembic_version"))
        await connection.execute(text("UPDATE alembic_version SET version_num = '0016'"))
    try:
        behind = await gateway.client.get("/readyz")
        assert behind.status_code == 503
        assert behind.json()["reason"] == "migrations_pending"
        assert "coalition migrate" in behind.json()["detail"]
        assert behind.headers["retry-after"] == "5"
        assert (await gateway.client.get("/livez")).status_code == 200
    finally:
        async with engine.begin() as connection:
            await connection.execute(
                text("UPDATE alembic_version SET version_num = :head"), {"head": head}
            )
    assert (await gateway.client.get("/readyz")).status_code == 200


async def test_still_ready_when_a_newer_release_has_migrated(gateway: Gateway):
    """A rolling update: the first new pod migrates; the old ones keep serving."""
    engine = gateway.service.engine
    async with engine.begin() as connection:
        head = await connection.scalar(text("SELECT version_num FROM alembic_version"))
        await connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    try:
        assert (await gateway.client.get("/readyz")).status_code == 200
    finally:
        async with engine.begin() as connection:
            await connection.execute(
                text("UPDATE alembic_version SET version_num = :head"), {"head": head}
            )


async def test_not_ready_without_the_database():
    # Nothing listens on port 1: connecting is refused at once.
    engine = create_engine("postgresql+asyncpg://postgres@127.0.0.1:1/none", pool_timeout=1)
    app = Starlette(routes=Probes(lambda request: engine, timeout=2).routes())
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            down = await client.get("/readyz")
            assert down.status_code == 503
            assert down.json()["reason"] == "database_unavailable"
            assert (await client.get("/livez")).status_code == 200
    finally:
        await engine.dispose()


async def test_not_ready_before_start_up():
    app = Starlette(routes=Probes(lambda request: None).routes())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        starting = await client.get("/readyz")
    assert (starting.status_code, starting.json()["reason"]) == (503, "starting")
