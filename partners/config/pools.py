"""Where a partner's points are kept (``[pool]``): the gateway's ledger, or a remote system."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from partners.config.reader import Reader


@dataclass(frozen=True)
class Pool:
    """Where a partner's points are kept: in the gateway's ledger (``hosted``), or in the
    partner's own system, reached over the API of ``partners/remote/openapi.yaml``."""

    hosted: bool = True
    base_url: str | None = None  # remote: the API's root; None with ``development``
    development: bool = False  # remote: the gateway serves a reference partner in-process
    timeout_seconds: float = 5.0

    @property
    def remote(self) -> bool:
        return not self.hosted


def read_pool(reader: Reader) -> Pool:
    reader.unknown_keys({"hosted", "base_url", "development", "timeout_seconds"})
    where = reader.text("hosted", required=False) or "gateway"
    if where not in ("gateway", "remote"):
        raise reader.fail("hosted", f'must be "gateway" or "remote", got {where!r}')
    if where == "gateway":
        for field in ("base_url", "development", "timeout_seconds"):
            if field in reader.table:
                raise reader.fail(field, 'applies only to a pool with hosted = "remote"')
        return Pool()
    development = reader.boolean("development", False)
    base_url = reader.text("base_url", required=False) or None
    if development == (base_url is not None):
        raise reader.fail(
            "base_url", "a remote pool needs either base_url or development = true, not both"
        )
    if base_url is not None:
        parts = urlsplit(base_url)
        if (
            parts.scheme not in ("https", "http")
            or not parts.netloc
            or parts.query
            or parts.fragment
            or parts.username is not None
        ):
            raise reader.fail("base_url", f"must be an absolute https URL, got {base_url!r}")
        if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise reader.fail("base_url", "must use https (plain http is allowed for loopback)")
        base_url = base_url.rstrip("/")
    timeout = reader.table.get("timeout_seconds", 5)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 120:
        raise reader.fail(
            "timeout_seconds", f"must be a number of seconds up to 120, got {timeout!r}"
        )
    return Pool(False, base_url, development, float(timeout))
