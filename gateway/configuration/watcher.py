"""Every process follows the configuration in the database: a small query every few seconds
tells whether another process changed it, or a scheduled version has taken effect."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gateway.configuration.service import Configuration

log = logging.getLogger("gateway.configuration")


class Watcher:
    """Refreshes ``configuration`` every ``interval`` seconds; its listeners hear of each
    change."""

    def __init__(self, configuration: Configuration, interval: float = 2.0) -> None:
        self.configuration = configuration
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def poll(self) -> bool:
        """Apply a change if there is one; whether there was."""
        coalition = await self.configuration.refresh()
        if coalition is None:
            return False
        log.info("configuration %d applied", self.configuration.state.version)
        return True

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.poll()
            except Exception:  # the database away for a while: keep the last configuration
                log.exception("configuration refresh failed; keeping the configuration loaded")

    def start(self) -> None:
        if self._task is None and self.interval > 0:
            self._task = asyncio.create_task(self._run(), name="configuration-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
