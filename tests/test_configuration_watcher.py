"""Each process (server or job runner) follows the configuration in the database: a change
made by another process, or a version scheduled for later, reaches its ledger service."""

from __future__ import annotations

from datetime import timedelta

from gateway.configuration.documents import State
from gateway.configuration.edits import partner_changed
from gateway.configuration.service import Configuration
from gateway.configuration.watcher import Watcher
from gateway.kernel.database import create_engine, migrate
from gateway.ledger.service import LedgerService
from partners.config.coalition import ConfigFiles
from tests.conftest import CORE_DIRECTORY, Clock, _truncate


def renamed(name: str):
    def edit(_state: State, files: ConfigFiles, _now: object) -> ConfigFiles:
        return partner_changed(files, "brewbar", {"name": name}, create=False)

    return edit


async def test_another_process_follows_changes_and_scheduled_versions(
    database_url: str, clock: Clock
):
    if database_url.startswith("postgresql"):
        await _truncate(database_url)
    engine = create_engine(database_url)
    try:
        await migrate(engine)
        mine = Configuration(engine, clock)
        await mine.open(CORE_DIRECTORY)
        # The other process: a job runner's ledger service, following with its watcher.
        theirs = Configuration(engine, clock)
        ledger = LedgerService(engine, await theirs.open(CORE_DIRECTORY), clock)
        theirs.listeners.append(ledger.reconfigure)
        watcher = Watcher(theirs, interval=0)  # polled by hand here
        assert not await watcher.poll()  # nothing changed: one small query, no reload

        await mine.change(renamed("BrewBar"), "operator:olivia")
        assert ledger.coalition.partners["brewbar"].name == "BrewBar Coffee"
        assert await watcher.poll()
        assert ledger.coalition.partners["brewbar"].name == "BrewBar"

        later = clock.now + timedelta(hours=1)
        await mine.change(renamed("BrewBar & Co"), "operator:olivia", effective_from=later)
        assert await watcher.poll()  # the change is seen, the name not in force yet
        assert ledger.coalition.partners["brewbar"].name == "BrewBar"
        assert not await watcher.poll()
        clock.now = later
        assert await watcher.poll()  # its moment came: reloaded without a new change
        assert ledger.coalition.partners["brewbar"].name == "BrewBar & Co"
        assert (await theirs.changes(5))[0].changed_by == "operator:olivia"
    finally:
        await engine.dispose()
