"""CPU per earn inside one gateway process: earnPoints over the ASGI app, no HTTP server.

    .venv/bin/python -m bench.profile_earn postgresql+asyncpg://postgres@127.0.0.1/h_x \
        [--earns 2000] [--clients 16] [--profile out.pstats] [--no-after-earning]

Prints the process CPU time per earn (everything the gateway's process does for one earn:
HTTP parsing aside, the ASGI app, GraphQL, SQLAlchemy and asyncpg) and, with --profile, a
cProfile of the timed part. ``--no-after-earning`` skips the tier refresh and challenge
evaluation after each earn (to see the rest). Not a throughput benchmark: see `make bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import time
import uuid
from typing import Any

from gateway.api.app import create_app
from gateway.api.settings import Settings

EARN = """
mutation Earn($input: EarnPointsInput!) {
  earnPoints(input: $input) {
    transfer { id points }
    wallet { balance }
    userErrors { code field message }
  }
}
"""
PARTNERS = ("skyway", "brewbar", "freshmart")


async def call(app: Any, body: bytes, token: str) -> tuple[int, bytes]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"gateway"),
            (b"content-type", b"application/json"),
            (b"accept", b"application/graphql-response+json"),
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("gateway", 80),
    }
    sent = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


def earn_body(member_id: str, partner: str, key: str, persisted: bool) -> bytes:
    variables = {
        "input": {
            "partner": partner,
            "member": {"id": member_id},
            "points": 10,
            "idempotencyKey": key,
        }
    }
    return json.dumps({"query": EARN, "variables": variables}).encode()


async def main(args: argparse.Namespace) -> None:
    if args.no_after_earning:
        from gateway.api.graphql import mutations

        async def nothing(*_: Any) -> None:
            return None

        mutations.after_earning = nothing  # type: ignore[assignment]
    settings = Settings(
        database_url=args.database_url, demo_data=True, hold_sweep_seconds=0, remote_retry_seconds=0
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        token = await app.state.issuer.issue("profile-operator", None, "operator")
        service = app.state.service
        members = []
        for index in range(args.members):
            enrolled = await service.enrol(PARTNERS[index % 3], f"profile-{uuid.uuid4()}")
            members.append(enrolled.member.id)
        from gateway.api.graphql.scalars import encode_id

        ids = [encode_id("Member", m) for m in members]
        bodies = [
            earn_body(ids[i % len(ids)], PARTNERS[i % 3], f"p-{uuid.uuid4()}", False)
            for i in range(args.earns + 200)
        ]
        gate = asyncio.Semaphore(args.clients)

        async def one(body: bytes) -> None:
            async with gate:
                status, answer = await call(app, body, token)
                if status != 200 or b'"errors"' in answer or b'"userErrors":[]' not in answer:
                    raise RuntimeError(f"{status}: {answer[:300]!r}")

        await asyncio.gather(*(one(b) for b in bodies[:200]))  # warm up
        if args.statements:
            from sqlalchemy import event

            seen: list[str] = []

            def record(*parameters: Any) -> None:
                seen.append(" ".join(str(parameters[2]).split())[:160])

            engine = service.engine.sync_engine
            event.listen(engine, "before_cursor_execute", record)
            await one(bodies[200])
            event.remove(engine, "before_cursor_execute", record)
            print(f"{len(seen)} statements (BEGIN and COMMIT not counted):")
            for statement in seen:
                print("  ", statement)
            return
        profiler = cProfile.Profile(time.process_time) if args.profile else None
        cpu, wall = time.process_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        await asyncio.gather(*(one(b) for b in bodies[200:]))
        if profiler:
            profiler.disable()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        print(
            f"{args.earns} earns: {1000 * cpu / args.earns:.2f} ms CPU per earn "
            f"(wall {wall:.1f} s, {args.earns / wall:.0f}/s, profiler {bool(profiler)})"
        )
        if profiler:
            profiler.dump_stats(args.profile)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("database_url")
    parser.add_argument("--earns", type=int, default=2000)
    parser.add_argument("--members", type=int, default=300)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--profile")
    parser.add_argument("--statements", action="store_true", help="list one earn's SQL")
    parser.add_argument("--no-after-earning", action="store_true")
    asyncio.run(main(parser.parse_args()))
