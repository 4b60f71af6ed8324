"""The configuration service: the coalition this process runs with, loaded from the
database, and the changes operators make (from files or through the API), each checked in
full before it is written: the documents load at every moment a version takes effect, and no
round trip through the conversion rules returns more points than it took."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.configuration import store
from gateway.configuration.documents import State
from gateway.configuration.plan import Plan, plan
from gateway.events import outbox, types
from gateway.events.event import NewEvent
from gateway.kernel.errors import DomainError, ErrorCode
from gateway.kernel.unit_of_work import UnitOfWork
from partners.config.arbitrage import find_arbitrage
from partners.config.coalition import Coalition, ConfigError, ConfigFiles, read_directory


@dataclass(frozen=True)
class Applied:
    """What a change did (or, for a dry run or a refused change, would do)."""

    plan: Plan
    change: int | None  # the change's id; None: nothing written

    @property
    def lines(self) -> list[str]:
        return self.plan.lines


def invalid(error: ConfigError) -> DomainError:
    return DomainError(ErrorCode.INVALID_CONFIGURATION, str(error))


def check(state: State, now: datetime, validators: Sequence[Validator] = ()) -> None:
    """Raise ``DomainError`` unless ``state`` loads now and whenever a scheduled version
    takes effect, passes ``validators`` then, and its rules allow no arbitrage from now on."""
    for moment in state.moments_from(now):
        try:
            coalition = state.coalition(moment)
        except ConfigError as error:
            raise invalid(error) from None
        for validator in validators:
            validator(coalition)
    found = find_arbitrage(state.live_rules(), now)
    if found is not None:
        raise DomainError(
            ErrorCode.RATES_ALLOW_ARBITRAGE,
            f"Refused: {found}. Lower a rate or raise a fee on that cycle.",
        )


Listener = Callable[[Coalition], Awaitable[None]]
# What this deployment can run, beyond the configuration itself (sign-ins' credentials):
# raises DomainError for a configuration it cannot.
Validator = Callable[[Coalition], None]
Edit = Callable[[State, ConfigFiles, datetime], ConfigFiles]  # state, files in force, now


class Configuration:
    """The configuration kept in the database, and this process's copy of it."""

    def __init__(self, engine: AsyncEngine, clock: Callable[[], datetime]) -> None:
        self.uow = UnitOfWork(engine)
        self.clock = clock
        self.state = State()
        self._coalition: Coalition | None = None
        self._next: datetime | None = None
        self.listeners: list[Listener] = []  # told of each new configuration this process loads
        self.validators: list[Validator] = []

    @property
    def coalition(self) -> Coalition:
        assert self._coalition is not None, "Configuration.open() first"
        return self._coalition

    async def open(self, directory: Path | str | None) -> Coalition:
        """Load the configuration; a new database first imports ``directory``'s files."""
        if directory is not None and (await self.uow.read(store.version)) == 0:
            await self.apply(read_directory(directory), "bootstrap", source="bootstrap")
        await self._load()
        return self.coalition

    async def _load(self) -> None:
        state = await self.uow.read(store.load)
        now = self.clock()
        try:
            coalition = state.coalition(now)
        except ConfigError as error:
            raise invalid(error) from None
        known = self._coalition is not None
        self.state, self._coalition, self._next = state, coalition, state.next_version_after(now)
        if known:
            for listener in self.listeners:
                await listener(coalition)

    async def refresh(self) -> Coalition | None:
        """The coalition anew when another process changed the configuration or a scheduled
        version took effect since the last load; None when nothing did (one small query)."""
        due = self._next is not None and self.clock() >= self._next
        if not due and await self.uow.read(store.version) == self.state.version:
            return None
        await self._load()
        return self.coalition

    async def apply(
        self,
        files: ConfigFiles,
        by: str,
        *,
        source: str = "apply",
        dry_run: bool = False,
        effective_from: datetime | None = None,
    ) -> Applied:
        """Make the database hold ``files`` (from ``effective_from``, default now).
        ``source`` "bootstrap" only imports into a database that holds no configuration."""
        return await self.change(
            lambda _state, _files, _now: files,
            by,
            source=source,
            dry_run=dry_run,
            effective_from=effective_from,
        )

    async def change(
        self,
        edit: Edit,
        by: str,
        *,
        source: str = "api",
        dry_run: bool = False,
        effective_from: datetime | None = None,
    ) -> Applied:
        """Apply what ``edit`` makes of the configuration in force when the change takes
        effect, read afresh under the lock that orders changes (never this process's copy,
        which may be seconds old)."""
        now = self.clock()
        if effective_from is not None and effective_from < now:
            raise DomainError(
                ErrorCode.INVALID_INPUT,
                "A change cannot take effect in the past.",
                ("effective_from",),
            )

        async def work(connection: AsyncConnection) -> Applied:
            await store.lock(connection)
            state = await store.load(connection)
            if source == "bootstrap" and not state.empty:
                return Applied(Plan(), None)
            files = edit(state, state.files(effective_from or now), now)
            try:
                planned = plan(state, files, now, effective_from)
            except ConfigError as error:
                raise invalid(error) from None
            check(planned.after(state), now, self.validators)
            if dry_run or planned.empty:
                return Applied(planned, None)
            summary = "\n".join(planned.lines)
            change = await store.write(connection, planned, now, by, source, summary)
            if source != "bootstrap":  # a new database's first import tells no one
                data = {"change": change, "source": source, "lines": planned.lines[:100]}
                event = NewEvent(types.CONFIGURATION_CHANGED, now, data=data, actor=by)
                await outbox.append(connection, [event])
            return Applied(planned, change)

        applied = await (self.uow.read(work) if dry_run else self.uow.write(work))
        if applied.change is not None and self._coalition is not None:
            await self._load()  # this process applies its own change at once
        return applied

    async def history(self) -> State:
        """Every document version, rule and change, read now."""
        return await self.uow.read(store.load)

    async def changes(self, limit: int) -> list[store.Change]:
        return await self.uow.read(lambda connection: store.changes_since(connection, limit))

    def files(self) -> ConfigFiles:
        """The configuration now, as a folder of files would hold it (for export)."""
        return self.state.files(self.clock())
