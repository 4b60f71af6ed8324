"""The adapters of the partners whose points live in their own systems.

A remote pool with ``base_url`` is reached over HTTP with the token from
``COALITION_REMOTE_<SLUG>_TOKEN``. One with ``development = true`` (the demo) is served by a
reference partner inside this process, without a network hop and without a token to set.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping

import httpx

from partners.config import Coalition, ConfigError
from partners.remote.adapter import RemotePool
from partners.remote.reference import ReferencePartner


def remote_pools(
    coalition: Coalition,
    environ: Mapping[str, str] | None = None,
    development_members: Mapping[str, dict[str, int]] | None = None,
    production: bool = False,
) -> tuple[dict[str, RemotePool], dict[str, ReferencePartner]]:
    """An adapter per remote partner, and the reference partners serving the development
    ones. ``LookupError`` names the variable when a partner's token is not set."""
    pools: dict[str, RemotePool] = {}
    references: dict[str, ReferencePartner] = {}
    for slug, partner in coalition.partners.items():
        pool = partner.pool
        if pool.hosted:
            continue
        timeout = float(pool.timeout_seconds)
        if pool.development:
            if production:
                raise ConfigError(
                    partner.source_file,
                    slug,
                    "pool.development",
                    "a development remote pool cannot run in production; give base_url",
                )
            token = secrets.token_urlsafe(24)
            members = dict((development_members or {}).get(slug, {}))
            reference = ReferencePartner(token, members, open_enrolment=True)
            references[slug] = reference
            transport = httpx.ASGITransport(app=reference.app)
            pools[slug] = RemotePool(
                f"http://{slug}.reference.invalid", token, timeout=timeout, transport=transport
            )
            continue
        assert pool.base_url is not None
        pools[slug] = RemotePool.from_environment(
            slug, pool.base_url, os.environ if environ is None else environ, timeout=timeout
        )
    return pools, references
