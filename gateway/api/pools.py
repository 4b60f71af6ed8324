"""The adapters of the partners whose points live in their own systems.

A remote pool with ``base_url`` is reached over HTTP with the token from
``COALITION_REMOTE_<SLUG>_TOKEN``. One with ``development = true`` (the demo) is served by a
reference partner inside this process, without a network hop and without a token to set.
With several worker processes (``coalition serve --workers N``) one reference partner must
serve them all, or each worker would keep a ledger of its own: the serving process starts
it on a loopback port (``shared_development_pools``) and tells the workers where, in
``COALITION_DEVELOPMENT_POOL_<SLUG>`` ("<base_url> <token>").
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import ExitStack, contextmanager

import httpx

from partners.config.coalition import Coalition, ConfigError
from partners.development.reference_partner import ReferencePartner, serve_reference_in_thread
from partners.remote.adapter import RemotePool


def shared_variable(slug: str) -> str:
    """Where a worker finds the development pool the serving process shares."""
    return f"COALITION_DEVELOPMENT_POOL_{slug.upper().replace('-', '_')}"


def development_partner(
    slug: str, members: Mapping[str, dict[str, int]] | None
) -> ReferencePartner:
    """The reference partner that stands in for a development pool. It knows its opening
    ``members`` only, as a real partner knows its own customers: enrolling another customer
    id there is refused (UNKNOWN_CUSTOMER)."""
    return ReferencePartner(secrets.token_urlsafe(24), dict((members or {}).get(slug, {})))


@contextmanager
def shared_development_pools(
    coalition: Coalition,
    environ: MutableMapping[str, str],
    development_members: Mapping[str, dict[str, int]] | None = None,
) -> Iterator[list[str]]:
    """Serve each development pool once, on a loopback port, for every worker process
    started inside this block: ``environ`` (the workers' environment) says where. Yields
    the slugs served."""
    development = sorted(s for s, p in coalition.partners.items() if p.pool.development)
    with ExitStack() as stack:
        for slug in development:
            partner = development_partner(slug, development_members)
            base_url = stack.enter_context(serve_reference_in_thread(partner))
            environ[shared_variable(slug)] = f"{base_url} {partner.token}"
        try:
            yield development
        finally:
            for slug in development:
                environ.pop(shared_variable(slug), None)


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
        environ = os.environ if environ is None else environ
        if pool.development:
            if production:
                raise ConfigError(
                    partner.source_file,
                    slug,
                    "pool.development",
                    "a development remote pool cannot run in production; give base_url",
                )
            shared = environ.get(shared_variable(slug), "").split()
            if len(shared) == 2:  # served once by `coalition serve` for all its workers
                pools[slug] = RemotePool(shared[0], shared[1], timeout=timeout)
                continue
            reference = development_partner(slug, development_members)
            references[slug] = reference
            transport = httpx.ASGITransport(app=reference.app)
            pools[slug] = RemotePool(
                f"http://{slug}.reference.invalid",
                reference.token,
                timeout=timeout,
                transport=transport,
            )
            continue
        assert pool.base_url is not None
        pools[slug] = RemotePool.from_environment(slug, pool.base_url, environ, timeout=timeout)
    return pools, references
