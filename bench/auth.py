"""What the gateway needs before it takes a GraphQL request from the bench: a configuration
it serves with several workers, an OAuth client, and an access token from /oauth/token.

The demo configuration's ``[sign_in]`` tables name the bundled development providers, which
keep their state in one process, so ``coalition serve --workers N`` refuses them for N > 1.
The bench signs in no one: it authenticates with the gateway's own client-credentials
tokens, so its copy of the configuration has those tables removed.

One operator client serves the whole run: the "spread" earns are at any partner for members
enrolled at any partner, and a partner's token reaches only members enrolled at it. An
operator also skips the per-earn member check a partner's app gets (gateway/graphql/access.py
``check_member``), so every earn still sends exactly the SQL bench/direct.py replays.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote_plus

from bench.client import HOST
from partners.config.coalition import DEMO_DIRECTORY, load_coalition

CLIENT_ID = "bench-operator"
# Seconds: the gateway's default is 600, raised so that a long run (more --requests, a slow
# machine) can not outlive the one token it uses.
TOKEN_LIFETIME = 6 * 3600
SIGN_IN_TABLE = re.compile(r"\[\s*sign_in\s*\]")
SECRET_LINE = re.compile(r"^client_secret:\s*(\S+)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Credentials:
    client_id: str
    secret: str


def without_sign_in(text: str) -> str:
    """A TOML document without its ``[sign_in]`` table and the comment lines just above it.

    Comments and blank lines between the table's last key and the next table belong to that
    next table and are kept.
    """
    kept: list[str] = []
    pending: list[str] = []  # comments and blank lines inside the removed table, so far
    skipping = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            if skipping:
                while pending and not pending[0].strip() and kept and not kept[-1].strip():
                    pending.pop(0)
                kept.extend(pending)
                pending.clear()
            skipping = SIGN_IN_TABLE.fullmatch(stripped.split("#", 1)[0].strip()) is not None
            if skipping:
                while kept and kept[-1].lstrip().startswith("#"):
                    kept.pop()
                continue
        if not skipping:
            kept.append(line)
        elif not stripped or stripped.startswith("#"):
            pending.append(line)
        else:
            pending.clear()
    while kept and not kept[-1].strip():
        kept.pop()
    return "\n".join(kept) + "\n"


def write_config(directory: Path) -> Path:
    """The demo configuration without sign-in, in ``directory`` (created); checked by loading."""
    directory.mkdir(parents=True, exist_ok=True)
    for source in sorted(DEMO_DIRECTORY.glob("*.toml")):
        (directory / source.name).write_text(without_sign_in(source.read_text()))
    coalition = load_coalition(directory)
    demo = load_coalition(DEMO_DIRECTORY)
    left = [slug for slug, partner in coalition.partners.items() if partner.sign_in is not None]
    if coalition.sign_in is not None or left or coalition.partners.keys() != demo.partners.keys():
        raise RuntimeError(f"the bench's copy of {DEMO_DIRECTORY} still has sign-in: {left}")
    return directory


async def create_operator_client(command: Path, env: dict[str, str]) -> Credentials:
    """``coalition client create --operator`` (it migrates the database first)."""
    process = await asyncio.create_subprocess_exec(
        str(command),
        "client",
        "create",
        "--operator",
        "--client-id",
        CLIENT_ID,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    text = output.decode(errors="replace")
    found = SECRET_LINE.search(text)
    if process.returncode != 0 or found is None:
        raise RuntimeError(f"`coalition client create` failed ({process.returncode}):\n{text}")
    return Credentials(CLIENT_ID, found.group(1))


def token_request(port: int, credentials: Credentials) -> bytes:
    """POST /oauth/token: the client-credentials grant, the client by HTTP Basic."""
    pair = f"{quote_plus(credentials.client_id)}:{quote_plus(credentials.secret)}"
    basic = base64.b64encode(pair.encode()).decode()
    body = b"grant_type=client_credentials"
    return (
        b"POST /oauth/token HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Basic %s\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s"
        % (HOST.encode(), port, basic.encode(), len(body), body)
    )


def access_token(status: int, body: bytes) -> str:
    """The access token from the token endpoint's answer; the run stops on anything else."""
    document = json.loads(body) if status == 200 else {}
    token = document.get("access_token")
    if not isinstance(token, str) or document.get("expires_in") != TOKEN_LIFETIME:
        raise RuntimeError(f"no access token ({TOKEN_LIFETIME} s) from /oauth/token: {body!r}")
    return token
