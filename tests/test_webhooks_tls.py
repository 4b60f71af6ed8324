"""A production delivery over real TLS: the gateway connects to the address it checked, and
still says the endpoint's host name in SNI and ``Host`` and verifies the certificate for that
name. The receiver is uvicorn with a certificate for ``hooks.example`` from a CA made here;
the name "resolves" to 127.0.0.1 and loopback counts as public for this test only: DNS and
the address rules have tests of their own (test_webhooks_targets).
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.kernel.database import create_engine
from gateway.kernel.sealing import Sealer
from gateway.kernel.unit_of_work import UnitOfWork
from gateway.webhooks import signing, targets
from gateway.webhooks.delivery import Clients, Sender
from gateway.webhooks.store import DeliveryRecord

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _certificate(
    subject: x509.Name,
    issuer: x509.Name,
    public: ec.EllipticCurvePublicKey,
    signer: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    names: list[str] = [],  # noqa: B006 (read only)
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.now(UTC) - timedelta(minutes=5))
        .not_valid_after(datetime.now(UTC) + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(public), critical=False
        )
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
            critical=False,
        )
    return builder.sign(signer, hashes.SHA256())


@dataclass
class Authority:
    """A certificate authority of the test's own, and a context that trusts only it."""

    directory: Path
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    def __post_init__(self) -> None:
        self.certificate = _certificate(
            _name("Test CA"), _name("Test CA"), self.key.public_key(), self.key, ca=True
        )

    def trusting(self) -> ssl.SSLContext:
        context = ssl.create_default_context(
            cadata=self.certificate.public_bytes(serialization.Encoding.PEM).decode()
        )
        return context

    def issue(self, host: str) -> tuple[Path, Path]:
        """A server certificate for ``host`` and its key, as files."""
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = _certificate(
            _name(host), self.certificate.subject, key.public_key(), self.key, ca=False,
            names=[host],
        )  # fmt: skip
        cert_file, key_file = self.directory / f"{host}.pem", self.directory / f"{host}.key"
        cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return cert_file, key_file


@dataclass
class Receiver:
    port: int
    seen: list[dict[str, str]]


@contextmanager
def serve_tls(cert_file: Path, key_file: Path) -> Iterator[Receiver]:
    seen: list[dict[str, str]] = []

    async def hook(request: Request) -> Response:
        await request.body()
        seen.append(dict(request.headers))
        return Response(status_code=204)

    app = Starlette(routes=[Route("/in", hook, methods=["POST"])])
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            app,
            log_level="warning",
            log_config=None,
            lifespan="off",
            ssl_certfile=str(cert_file),
            ssl_keyfile=str(key_file),
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "TLS receiver did not start"
            time.sleep(0.01)
        try:
            yield Receiver(port, seen)
        finally:
            server.should_exit = True
            thread.join(10)


@pytest.fixture
def authority(tmp_path: Path) -> Authority:
    return Authority(tmp_path)


@pytest.fixture
def hooks_example(monkeypatch: pytest.MonkeyPatch) -> None:
    """``hooks.example`` resolves to 127.0.0.1, which counts as public here."""

    async def addresses(host: str, port: int) -> list[targets.IPAddress]:
        assert host == "hooks.example"
        return [ipaddress.ip_address("127.0.0.1")]

    monkeypatch.setattr(targets, "_addresses", addresses)
    monkeypatch.setattr(targets, "_public", lambda address: True)


def _item() -> DeliveryRecord:
    return DeliveryRecord(
        1, 1, "msg_tls", None, "webhook.test", None, NOW, "pending", 0, NOW, None, NOW, None
    )


async def _call(authority: Authority, url: str) -> tuple[int, str]:
    engine = create_engine("sqlite+aiosqlite:///:memory:")  # never used by a call
    sender = Sender(UnitOfWork(engine), lambda: NOW, Sealer(b"k" * 32), production=True)
    clients = Clients(5.0, 4, transport=httpx.AsyncHTTPTransport(verify=authority.trusting()))
    try:
        return await sender._call(clients, url, [signing.new_secret()], _item(), b"{}")
    finally:
        await clients.aclose()
        await engine.dispose()


@pytest.mark.usefixtures("hooks_example")
async def test_a_pinned_address_still_verifies_the_host_names_certificate(authority: Authority):
    with serve_tls(*authority.issue("hooks.example")) as receiver:
        url = f"https://hooks.example:{receiver.port}/in"
        assert await _call(authority, url) == (204, "")
        (headers,) = receiver.seen
        assert headers["host"] == f"hooks.example:{receiver.port}"
        assert headers["webhook-id"] == "msg_tls"


@pytest.mark.usefixtures("hooks_example")
async def test_a_certificate_for_another_name_is_refused(authority: Authority):
    with serve_tls(*authority.issue("other.example")) as receiver:
        with pytest.raises(httpx.ConnectError, match="certificate"):
            await _call(authority, f"https://hooks.example:{receiver.port}/in")
        assert receiver.seen == []
