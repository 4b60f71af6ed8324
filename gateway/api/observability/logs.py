"""Log lines as JSON objects (production) or readable lines (the demo), with structlog.

Our structlog loggers and every stdlib ``logging`` record (uvicorn's, ``logging.getLogger``
calls across the gateway) go through the same processors: the request id bound to the
request's context, the level, the logger's name, an ISO timestamp in UTC.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor

HANDLER = "coalition"


def configure_logging(
    log_format: str, level: str | int | None = None, stream: TextIO | None = None
) -> None:
    """Send the root logger's records to ``stream`` (stderr) rendered as ``log_format``
    (json or console). Safe to call again: it replaces what an earlier call (or
    ``logging.basicConfig``) installed. ``level`` None keeps a level set before (INFO if
    none was)."""
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    last: list[Processor]
    if log_format == "json":
        last = [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        last = [structlog.dev.ConsoleRenderer(colors=False)]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(), _drop_message],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *last],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(HANDLER)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        # Ours from an earlier call, and basicConfig's; a test runner's capture stays.
        if old.get_name() == HANDLER or type(old) is logging.StreamHandler:
            root.removeHandler(old)
    root.addHandler(handler)
    if level is not None:
        root.setLevel(level.upper() if isinstance(level, str) else level)
    elif root.level in (logging.NOTSET, logging.WARNING):
        root.setLevel(logging.INFO)
    for chatty in ("alembic", "httpx"):  # a line per migration step, per outgoing request
        logging.getLogger(chatty).setLevel(logging.WARNING)


def _drop_message(logger: Any, name: str, event: EventDict) -> EventDict:
    """A record another handler formatted first carries its ``message`` (the ``event``);
    uvicorn's carry a ``color_message`` with terminal escapes."""
    event.pop("message", None)
    event.pop("color_message", None)
    return event


def access_logger() -> Any:
    return structlog.stdlib.get_logger("gateway.access")
