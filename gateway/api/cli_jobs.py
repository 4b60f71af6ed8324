"""`coalition jobs`, `expire-holds`, `expire-points`, the programme's jobs run once, and
`remote` (operations at partners that keep their own points)."""

from __future__ import annotations

import argparse
import asyncio
from datetime import timedelta

from gateway.api.configured import configured_ledger
from gateway.api.settings import Settings
from gateway.remote.operations import connect_pools


def expire_holds(settings: Settings) -> int:
    from gateway.holds.service import HoldService
    from gateway.kernel.database import create_engine, migrate

    async def run() -> int:
        engine = create_engine(settings.database_url)
        try:
            await migrate(engine)
            service = await configured_ledger(engine, settings)
            await service.start()
            return await HoldService(service).expire_due(limit=10**6)
        finally:
            await engine.dispose()

    released = asyncio.run(run())
    print(f"Released {released} expired hold(s).")
    return 0


def run_jobs(settings: Settings) -> int:
    """Run the job runner (consumers, sweeps, remote retries) until SIGTERM or Ctrl-C; it
    follows configuration changes as the servers do."""
    import signal

    from gateway.api import jobs as wiring
    from gateway.api.pools import remote_pools
    from gateway.configuration.service import Configuration
    from gateway.configuration.watcher import Watcher
    from gateway.kernel.database import create_engine, migrate
    from gateway.ledger.service import LedgerService, utcnow

    async def run() -> None:
        engine = create_engine(settings.database_url)
        try:
            await migrate(engine)
            configuration = Configuration(engine, utcnow)
            coalition = await configuration.open(settings.config_dir)
            # A development pool lives inside the gateway process: its own runner resumes it.
            reachable = sorted(
                s for s, p in coalition.partners.items() if p.pool.base_url is not None
            )
            pools, _ = remote_pools(coalition, production=settings.production)
            service = LedgerService(engine, coalition)
            remote = connect_pools(service, pools)
            configuration.listeners.append(service.reconfigure)
            watcher = Watcher(configuration, settings.config_poll)
            try:
                await service.start()
                runner = wiring.runner(service, settings, reachable)
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for signum in (signal.SIGTERM, signal.SIGINT):
                    loop.add_signal_handler(signum, stop.set)
                names = [c.name for c in runner.consumers] + [s.name for s in runner.sweeps]
                print(f"Jobs running: {', '.join(names) or 'none'}", flush=True)
                watcher.start()
                await runner.run(stop)
                print("Jobs stopped.", flush=True)
            finally:
                await watcher.stop()
                await remote.aclose()
        finally:
            await engine.dispose()

    asyncio.run(run())
    return 0


def remote(settings: Settings, args: argparse.Namespace) -> int:
    """Retry pending remote operations that are due, or list operations."""
    from gateway.api.pools import remote_pools
    from gateway.kernel.database import create_engine, migrate
    from gateway.remote.record import PENDING, operations_summary

    async def run() -> int:
        engine = create_engine(settings.database_url)
        try:
            await migrate(engine)
            service = await configured_ledger(engine, settings)
            coalition = service.coalition
            development = sorted(s for s, p in coalition.partners.items() if p.pool.development)
            reachable = sorted(
                s for s, p in coalition.partners.items() if p.pool.base_url is not None
            )
            pools, _ = remote_pools(coalition, production=settings.production)
            remote = connect_pools(service, pools)
        except BaseException:
            await engine.dispose()
            raise
        try:
            await service.start()
            if args.action == "list":
                found = await remote.operations(args.status, limit=args.limit)
                for line in operations_summary(found):
                    print(line)
                print(f"{len(found)} operation(s).")
                return 0
            if development:
                print(
                    f"Skipping {', '.join(development)}: a development pool is served inside "
                    "the gateway process, whose own job resumes its operations."
                )
            counts = await remote.resume_due(limit=args.limit, partners=reachable)
            print(", ".join(f"{count} {status}" for status, count in counts.items()))
            left = await remote.operations(PENDING, limit=1, partners=reachable)
            return 0 if not left else 3
        finally:
            await remote.aclose()
            await engine.dispose()

    return asyncio.run(run())


JOBS = {
    # command words -> what the job does; each is safe to repeat or to run alongside servers
    ("programme", "mature"): "move pending points whose return window ended into the wallets",
    ("tiers", "review"): "store due tier reviews and downgrades",
    ("challenges", "evaluate"): "award the badges of the last 40 days' earns not yet awarded",
}


def run_job(settings: Settings, words: tuple[str, str]) -> int:
    """One of the periodic jobs, once, now (safe to run alongside the servers)."""
    from gateway.challenges.service import ChallengeService
    from gateway.earning.service import EarningService
    from gateway.expiry.service import ExpiryService
    from gateway.kernel.database import create_engine, migrate
    from gateway.tiers.service import TierService

    async def run() -> str:
        engine = create_engine(settings.database_url)
        try:
            await migrate(engine)
            service = await configured_ledger(engine, settings)
            await service.start()
            if words == ("programme", "mature"):
                matured = await EarningService(service).mature_due(limit=10**6)
                return f"Matured {matured} purchase(s)."
            if words == ("expire", "points"):
                expiry, total, batch = ExpiryService(service), 0, 10_000
                while (posted := await expiry.expire_due(limit=batch)) > 0:
                    total += posted
                    if posted < batch:
                        break
                return f"Posted {total} expir{'y' if total == 1 else 'ies'} to breakage."
            if words == ("tiers", "review"):
                tiers, total, changed = TierService(service), 0, 1
                while changed:
                    changed = await tiers.review_due()
                    total += changed
                return f"Reviewed {total} member(s) whose tier was due."
            if words == ("challenges", "evaluate"):
                since = service.clock() - timedelta(days=40)
                awarded = await ChallengeService(service).evaluate_all(since)
                return f"Awarded {awarded} badge(s)."
            raise AssertionError(words)
        finally:
            await engine.dispose()

    print(asyncio.run(run()))
    return 0
