"""The composition root of background work: which consumers and sweeps a runner runs, for
``coalition serve`` (jobs in-process) and ``coalition jobs`` alike."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from gateway.analytics.consumer import DailyAggregates
from gateway.api.settings import Settings
from gateway.audit import store as audit_store
from gateway.audit.consumer import AuditEvents
from gateway.challenges.awards import ChallengeAwards
from gateway.challenges.service import ChallengeService
from gateway.earning.service import EarningService
from gateway.events.event import Consumer
from gateway.expiry.service import ExpiryService
from gateway.holds.service import HoldService
from gateway.imports.service import ImportService
from gateway.jobs.runner import JobRunner, Sweep
from gateway.ledger.service import LedgerService
from gateway.privacy.service import PrivacyService
from gateway.remote.operations import RemoteOperations
from gateway.tiers.service import TierService
from gateway.webhooks import delivery
from gateway.webhooks.fanout import WebhookFanout
from gateway.webhooks.service import WebhookService


def imports(service: LedgerService) -> ImportService:
    """The import service over the earning service (with tiers when the coalition has them)."""
    tiers = TierService(service) if service.coalition.tiers is not None else None
    return ImportService(EarningService(service, tiers))


def privacy(service: LedgerService) -> PrivacyService:
    """Members' data rights; the export's sections other packages own are added here."""
    return PrivacyService(service, extra_sections={"auditEntries": audit_store.about_member})


def consumers(service: LedgerService) -> list[Consumer]:
    """The event consumers: each has a stable name, its position is stored under it."""
    return [
        ChallengeAwards(ChallengeService(service)),
        DailyAggregates(),
        WebhookFanout(service.clock),
        AuditEvents(),
    ]


def sweeps(
    service: LedgerService, every: float, remote_every: float, remote: Sequence[str] | None
) -> list[Sweep]:
    """The periodic sweeps; ``every`` 0 turns them off. ``remote``: the partners whose
    pending operations this runner resumes (None: all; empty: none)."""
    found: list[Sweep] = []
    if every > 0:
        earning, challenges = EarningService(service), ChallengeService(service)

        async def award_badges() -> int:
            return await challenges.evaluate_all(service.clock() - timedelta(days=2))

        found += [
            Sweep("holds.release_expired", HoldService(service).expire_due, every),
            Sweep("points.mature", earning.mature_due, every),
            Sweep("tiers.review", TierService(service).review_due, every),
            Sweep("points.expire", ExpiryService(service).expire_due, every * 20),
            Sweep("challenges.award_badges", award_badges, every * 20),
            # Uploaded import files; one runner at a time runs them (the sweep's lock).
            Sweep("imports.run", imports(service).run_waiting, min(every, 5)),
        ]
    if remote_every > 0 and (remote is None or remote):

        async def resume() -> object:
            operations = service.remote
            assert isinstance(operations, RemoteOperations)  # connected by the composition root
            return await operations.resume_due(partners=remote)

        found.append(Sweep("remote.resume", resume, remote_every))
    return found


def webhooks(service: LedgerService, settings: Settings) -> WebhookService:
    return WebhookService(service, settings.sealer(), settings.production)


def runner(
    service: LedgerService, settings: Settings, remote: Sequence[str] | None = None
) -> JobRunner:
    found = sweeps(service, settings.hold_sweep_seconds, settings.remote_retry_seconds, remote)
    if settings.webhook_poll_seconds > 0:
        # Due webhooks; one runner at a time sends (the sweep's lock, and each claim's lease).
        found.append(
            Sweep(delivery.JOB, webhooks(service, settings).send_due, settings.webhook_poll_seconds)
        )
    return JobRunner(service.uow, consumers(service), found, poll=settings.events_poll_seconds)
