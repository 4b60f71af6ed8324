"""`coalition client` and `coalition keys`: OAuth clients of partner apps and operators,
and the gateway's token-signing keys."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from gateway.api.auditing import record_cli
from gateway.api.cli_database import with_database
from gateway.api.settings import Settings
from gateway.auth.clients import ClientError
from partners.config.coalition import load_coalition

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from gateway.auth.clients import ClientRecord


def _print_secret(client_id: str, secret: str) -> None:
    print(f"client_id:     {client_id}")
    print(f"client_secret: {secret}")
    print("Store the secret now: it will not be shown again.")


def _client_create(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.auth.clients import create_client
    from gateway.ledger.service import utcnow

    partner: str | None = None if args.operator else args.partner
    known = None
    if partner is not None:
        known = list(load_coalition(settings.config_dir).partners)
    scopes = None if args.scopes is None else args.scopes.split()

    async def work(engine: AsyncEngine) -> tuple[str, str]:
        created = await create_client(
            engine, partner, scopes, args.client_id, now=utcnow(), known_partners=known
        )
        kind = {"operator": partner is None}
        await record_cli(engine, "client.create", ("client", created[0]), partner, kind)
        return created

    client_id, secret = with_database(settings, work)
    print(f"Created {'operator' if partner is None else partner} client {client_id}.")
    _print_secret(client_id, secret)
    return 0


def _client_rotate(settings: Settings, client_id: str) -> int:
    from gateway.auth.clients import rotate_secret
    from gateway.ledger.service import utcnow

    async def work(engine: AsyncEngine) -> str:
        secret = await rotate_secret(engine, client_id, utcnow())
        await record_cli(engine, "client.rotate", ("client", client_id))
        return secret

    secret = with_database(settings, work)
    print(f"Rotated the secret of {client_id}; the old secret no longer works.")
    _print_secret(client_id, secret)
    return 0


def _client_disable(settings: Settings, client_id: str) -> int:
    from gateway.auth.clients import disable_client
    from gateway.ledger.service import utcnow

    async def work(engine: AsyncEngine) -> ClientRecord:
        record = await disable_client(engine, client_id, utcnow())
        await record_cli(engine, "client.disable", ("client", client_id), record.partner)
        return record

    record = with_database(settings, work)
    print(
        f"Disabled {client_id} (since {record.disabled_at:%Y-%m-%d %H:%M:%S %Z}). Tokens already "
        "issued stay valid until they expire."
    )
    return 0


def _client_list(settings: Settings) -> int:
    from gateway.auth.clients import list_clients

    records = with_database(settings, list_clients)
    if not records:
        print("No clients.")
    for record in records:
        status = "disabled" if record.disabled_at else "active"
        owner = "operator" if record.partner is None else f"partner {record.partner}"
        print(f"{record.client_id}  {owner}  {status}  scopes: {' '.join(sorted(record.scopes))}")
    return 0


def keys(settings: Settings, action: str) -> int:
    from gateway.auth.keys import KeyStore, SigningKeyInfo
    from gateway.ledger.service import utcnow

    async def work(engine: AsyncEngine) -> tuple[str | None, list[SigningKeyInfo]]:
        store = KeyStore(engine, utcnow, settings.token_lifetime, settings.sealer())
        kid = await store.rotate() if action == "rotate" else None
        if kid is not None:
            await record_cli(engine, "keys.rotate", ("signing_key", kid))
        return kid, await store.describe()

    kid, keys = with_database(settings, work)
    if kid is not None:
        print(f"New signing key {kid}; running gateways sign with it within 30 s.")
    now = utcnow()
    for key in keys:
        if key.current:
            status = "current"
        elif key.published_until is None:
            status = "unretired"
        elif key.published_until > now:
            status = f"retired, published until {key.published_until:%Y-%m-%d %H:%M:%S %Z}"
        else:
            status = "retired, unpublished"
        print(f"{key.kid}  created {key.created_at:%Y-%m-%d %H:%M:%S %Z}  {status}")
    if not keys:
        print("No signing keys yet: the gateway creates one when it starts.")
    return 0


def client(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "create":
        if args.operator and args.scopes is not None:
            raise ClientError("--scopes is for partner clients: an operator client has 'operator'")
        return _client_create(settings, args)
    if args.action == "rotate":
        return _client_rotate(settings, args.client_id)
    if args.action == "disable":
        return _client_disable(settings, args.client_id)
    return _client_list(settings)
