"""Which URLs the gateway calls (server-side request forgery).

Everywhere: ``http`` or ``https``, a host, no credentials, at most 2,048 characters. In
production also: ``https`` only, and no host that is or resolves to an address that is not
public (loopback, private, link-local, CGNAT, multicast, reserved, unspecified, or IPv4
mapped into IPv6 from one of those). The check runs at registration and again at every send,
where the request then goes to the address that was checked (not a second resolution).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from gateway.kernel.errors import DomainError, ErrorCode

MAX_URL_LENGTH = 2048
CGNAT = ipaddress.ip_network("100.64.0.0/10")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Refused(DomainError):
    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.WEBHOOK_URL_REFUSED, message, ("url",))


@dataclass(frozen=True)
class Target:
    """Where to send: ``url`` as registered; ``address`` the checked IP to connect to
    (None: let the HTTP client resolve, in development)."""

    url: str
    host: str
    port: int
    address: str | None = None

    def request_url(self) -> str:
        """The URL to request: the checked address in place of the host name."""
        if self.address is None:
            return self.url
        parts = urlsplit(self.url)
        shown = f"[{self.address}]" if ":" in self.address else self.address
        netloc = f"{shown}:{parts.port}" if parts.port is not None else shown
        return parts._replace(netloc=netloc).geturl()


def parse(url: str, production: bool) -> SplitResult:
    """``url``'s parts if its form is allowed; ``Refused`` otherwise."""
    if len(url) > MAX_URL_LENGTH:
        raise Refused(f"A webhook URL has at most {MAX_URL_LENGTH} characters.")
    if any(ord(character) < 33 or ord(character) == 127 for character in url):
        raise Refused("A webhook URL has no spaces or control characters.")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        raise Refused("This is not a URL.") from None
    allowed = ("https",) if production else ("http", "https")
    if parts.scheme not in allowed:
        raise Refused("A webhook URL must use https." if production else "Use http or https.")
    if not parts.hostname:
        raise Refused("A webhook URL names a host.")
    if parts.username is not None or parts.password is not None:
        raise Refused("A webhook URL carries no user name or password.")
    if parts.fragment:
        raise Refused("A webhook URL has no fragment (#...).")
    return parts


def _public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None and not _public(mapped):
            return False
    if isinstance(address, ipaddress.IPv4Address) and address in CGNAT:
        return False
    return not (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )


async def _addresses(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise Refused(f"The host {host!r} cannot be resolved.") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in found]


async def check(url: str, production: bool) -> Target:
    """Where ``url`` may be called now; ``Refused`` when it may not."""
    parts = parse(url, production)
    assert parts.hostname is not None
    try:
        host = parts.hostname.encode("idna").decode("ascii")  # as DNS, TLS and Host spell it
    except UnicodeError:
        raise Refused("The URL's host name is not valid.") from None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if not production:
        return Target(url, host, port)
    addresses = await _addresses(host, port)
    if not addresses:
        raise Refused(f"The host {host!r} cannot be resolved.")
    for address in addresses:
        if not _public(address):
            raise Refused(
                f"The gateway does not call {host!r}: it is or resolves to a private, "
                "loopback or otherwise non-public address."
            )
    return Target(url, host, port, str(addresses[0]))
