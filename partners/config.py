"""Partner and conversion configuration, loaded from TOML files an operator edits.

One file per partner (``<slug>.toml``) plus ``coalition.toml`` for the coalition itself.
Amounts of money and rates are decimal *strings*; a TOML float is refused because it
cannot hold 0.012 exactly. Every error names the file, the partner and the field.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .challenges import Challenge, read_challenges
from .earning import EARNING_KEYS, EarningRules, read_earning
from .expiry import ExpiryPolicy, GiftingLimits, read_expiry, read_gifting
from .reader import MAX_POINTS, ConfigError, Reader
from .sign_in import SignIn, StepUp, read_sign_in, read_step_up
from .tiers import Tiers, read_tiers

__all__ = ["MAX_POINTS", "ConfigError", "SignIn", "StepUp"]

SLUG = re.compile(r"^[a-z][a-z0-9-]{1,31}$")
CURRENCY_CODE = re.compile(r"^[A-Z][A-Z0-9]{2,7}$")
RESERVED_SLUGS = {"coalition", "operator"}  # the coalition's own provider; the fee creditor


class Rounding(Enum):
    DOWN = "down"
    UP = "up"
    HALF_UP = "half_up"
    HALF_EVEN = "half_even"

    @property
    def decimal_mode(self) -> str:
        return {
            Rounding.DOWN: ROUND_FLOOR,
            Rounding.UP: ROUND_CEILING,
            Rounding.HALF_UP: ROUND_HALF_UP,
            Rounding.HALF_EVEN: ROUND_HALF_EVEN,
        }[self]


@dataclass(frozen=True)
class EarnRule:
    points_per_unit: Decimal
    rounding: Rounding
    purchase_currency: str

    def points_for(self, amount: Decimal) -> int:
        return int((amount * self.points_per_unit).quantize(Decimal(1), self.rounding.decimal_mode))


@dataclass(frozen=True)
class ConversionRule:
    """A directed rule: points of ``source`` become points of ``target`` at ``rate``."""

    source: str
    target: str
    rate: Decimal
    fee_percent: Decimal
    fee_fixed: int
    min_points: int
    max_points: int
    enabled: bool
    effective_from: datetime
    effective_until: datetime | None

    def in_force_at(self, moment: datetime) -> bool:
        if moment < self.effective_from:
            return False
        return self.effective_until is None or moment < self.effective_until

    def overlaps(self, other: ConversionRule) -> bool:
        far = datetime.max.replace(tzinfo=UTC)
        return self.effective_from < (other.effective_until or far) and other.effective_from < (
            self.effective_until or far
        )


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


def _read_pool(reader: Reader) -> Pool:
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


@dataclass(frozen=True)
class Partner:
    slug: str
    name: str
    currency_code: str
    currency_name: str
    point_value: Decimal
    earn: EarnRule
    conversions: tuple[ConversionRule, ...]
    source_file: str
    sign_in: SignIn | None = None
    step_up: StepUp | None = None
    pool: Pool = Pool()
    earning: EarningRules = field(default_factory=lambda: EarningRules())  # see earning.py
    expiry: ExpiryPolicy | None = None  # None: points never expire
    gifting: GiftingLimits | None = None  # None: members cannot gift points here


@dataclass(frozen=True)
class Coalition:
    name: str
    settlement_currency: str
    partners: dict[str, Partner]
    sign_in: SignIn | None = None  # the coalition's own provider: operators, and members
    fee_per_point_issued: Decimal = Decimal(0)  # the operator's, charged to the issuer
    tiers: Tiers | None = None  # None: the coalition has no tiers
    challenges: tuple[Challenge, ...] = ()

    def partner(self, slug: str) -> Partner | None:
        return self.partners.get(slug)

    def rules(self, source: str, target: str) -> list[ConversionRule]:
        partner = self.partners.get(source)
        if partner is None:
            return []
        return [rule for rule in partner.conversions if rule.target == target]

    def rule_in_force(self, source: str, target: str, moment: datetime) -> ConversionRule | None:
        for rule in self.rules(source, target):
            if rule.enabled and rule.in_force_at(moment):
                return rule
        return None

    def rules_in_force(self, source: str, moment: datetime) -> list[ConversionRule]:
        partner = self.partners.get(source)
        if partner is None:
            return []
        return [r for r in partner.conversions if r.enabled and r.in_force_at(moment)]

    def is_remote(self, slug: str) -> bool:
        partner = self.partners.get(slug)
        return partner is not None and partner.pool.remote


def _read_rule(reader: Reader, source: str) -> ConversionRule:
    reader.unknown_keys(
        {
            "to",
            "rate",
            "fee_percent",
            "fee_fixed",
            "min_points",
            "max_points",
            "enabled",
            "effective_from",
            "effective_until",
        }
    )
    fee_percent = reader.decimal("fee_percent", default="0", positive=False)
    if fee_percent >= 100:
        raise reader.fail("fee_percent", f"must be below 100, got {fee_percent}")
    min_points = reader.integer("min_points", default=1, minimum=1)
    max_points = reader.integer("max_points", default=MAX_POINTS, minimum=1)
    if max_points < min_points:
        raise reader.fail("max_points", f"{max_points} is below min_points {min_points}")
    effective_from = reader.moment("effective_from", required=True)
    assert effective_from is not None
    effective_until = reader.moment("effective_until", required=False)
    if effective_until is not None and effective_until <= effective_from:
        raise reader.fail("effective_until", "must be after effective_from")
    return ConversionRule(
        source=source,
        target=reader.text("to", SLUG),
        rate=reader.decimal("rate"),
        fee_percent=fee_percent,
        fee_fixed=reader.integer("fee_fixed", default=0),
        min_points=min_points,
        max_points=max_points,
        enabled=reader.boolean("enabled", True),
        effective_from=effective_from,
        effective_until=effective_until,
    )


def _read_partner(file: Path, data: dict[str, Any], settlement_currency: str) -> Partner:
    slug_value = data.get("slug")
    partner = slug_value if isinstance(slug_value, str) else None
    reader = Reader(file, partner, data)
    reader.unknown_keys(
        {
            "slug",
            "name",
            "currency",
            "point_value",
            "earn",
            "conversions",
            "sign_in",
            "step_up",
            "pool",
            "expiry",
            "gifting",
            *EARNING_KEYS,
        }
    )
    slug = reader.text("slug", SLUG)
    if slug in RESERVED_SLUGS:
        raise reader.fail("slug", f"'{slug}' is reserved")
    if file.stem != slug:
        raise reader.fail("slug", f"must match the file name '{file.stem}'")
    currency = reader.table_at("currency")
    currency.unknown_keys({"code", "name"})
    earn = reader.table_at("earn")
    earn.unknown_keys({"points_per_unit", "rounding", "purchase_currency"})
    rounding_text = earn.text("rounding", required=False) or "down"
    try:
        rounding = Rounding(rounding_text)
    except ValueError:
        choices = ", ".join(r.value for r in Rounding)
        raise earn.fail("rounding", f"must be one of {choices}, got {rounding_text!r}") from None
    raw_rules = data.get("conversions", [])
    if not isinstance(raw_rules, list):
        raise reader.fail("conversions", "must be an array of tables ([[conversions]])")
    rules = []
    for index, raw in enumerate(raw_rules):
        if not isinstance(raw, dict):
            raise reader.fail(f"conversions[{index}]", "must be a table")
        rules.append(_read_rule(Reader(file, slug, raw, f"conversions[{index}]."), slug))
    for index, rule in enumerate(rules):
        if rule.target == slug:
            raise reader.fail(f"conversions[{index}].to", "a partner cannot convert into itself")
        for other in rules[:index]:
            if other.target == rule.target and other.overlaps(rule):
                raise reader.fail(
                    f"conversions[{index}].effective_from",
                    f"overlaps another rule to '{rule.target}'; give the earlier one an "
                    "effective_until no later than this one's effective_from",
                )
    return Partner(
        slug=slug,
        name=reader.text("name"),
        currency_code=currency.text("code", CURRENCY_CODE),
        currency_name=currency.text("name"),
        point_value=reader.decimal("point_value"),
        earn=EarnRule(
            points_per_unit=earn.decimal("points_per_unit"),
            rounding=rounding,
            purchase_currency=earn.text("purchase_currency", CURRENCY_CODE, required=False)
            or settlement_currency,
        ),
        conversions=tuple(rules),
        source_file=str(file),
        sign_in=_optional(reader, "sign_in", lambda table: read_sign_in(table, coalition=False)),
        step_up=_optional(reader, "step_up", read_step_up),
        pool=_optional(reader, "pool", _read_pool) or Pool(),
        earning=read_earning(reader),
        expiry=_optional(reader, "expiry", read_expiry),
        gifting=_optional(reader, "gifting", read_gifting),
    )


def _optional(reader: Reader, field: str, read: Any) -> Any:
    table = reader.optional_table(field)
    return None if table is None else read(table)


def _load_toml(file: Path) -> dict[str, Any]:
    try:
        with file.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(file, None, "-", f"is not valid TOML: {error}") from None


def _issuer_key(issuer: str) -> str:
    """``issuer`` as compared for duplicates: scheme and host in lower case, without the
    default port or a trailing slash (the issuer itself is an exact string; this only
    refuses two spellings of one provider)."""
    parts = urlsplit(issuer)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is not None and port != {"https": 443, "http": 80}.get(scheme):
        host = f"{host}:{port}"
    return f"{scheme}://{host}{parts.path.rstrip('/')}"


def load_coalition(directory: Path | str) -> Coalition:
    """Load ``coalition.toml`` and every other ``*.toml`` in ``directory`` as a partner.

    Two sign-ins (partners' or the coalition's) may not name one provider issuer: tokens and
    identities are told apart by issuer, so a shared one would sign a member of one partner
    in as the other's customer (or as an operator).
    """
    folder = Path(directory)
    coalition_file = folder / "coalition.toml"
    if not coalition_file.is_file():
        raise ConfigError(coalition_file, None, "-", "file not found")
    top = Reader(coalition_file, None, _load_toml(coalition_file))
    top.unknown_keys(
        {"name", "settlement_currency", "sign_in", "settlement", "tiers", "challenges"}
    )
    settlement = top.optional_table("settlement")
    fee_per_point = Decimal(0)
    if settlement is not None:
        settlement.unknown_keys({"fee_per_point_issued"})
        fee_per_point = settlement.decimal("fee_per_point_issued", default="0", positive=False)
    settlement_currency = top.text("settlement_currency", CURRENCY_CODE)
    coalition_sign_in: SignIn | None = _optional(
        top, "sign_in", lambda table: read_sign_in(table, coalition=True)
    )
    partners: dict[str, Partner] = {}
    currencies: dict[str, str] = {}
    issuers: dict[str, str] = {}  # issuer key -> who uses it: "partner 'x'" or "the coalition"
    if coalition_sign_in is not None and coalition_sign_in.issuer is not None:
        issuers[_issuer_key(coalition_sign_in.issuer)] = "the coalition (coalition.toml)"
    for file in sorted(folder.glob("*.toml")):
        if file.name == "coalition.toml":
            continue
        partner = _read_partner(file, _load_toml(file), settlement_currency)
        if partner.slug in partners:
            raise ConfigError(file, partner.slug, "slug", "is used by another partner")
        if partner.currency_code in currencies:
            raise ConfigError(
                file,
                partner.slug,
                "currency.code",
                f"'{partner.currency_code}' is already the currency of "
                f"'{currencies[partner.currency_code]}'",
            )
        if partner.currency_code == settlement_currency:
            raise ConfigError(
                file, partner.slug, "currency.code", "must differ from the settlement currency"
            )
        issuer = partner.sign_in.issuer if partner.sign_in is not None else None
        if issuer is not None:
            key = _issuer_key(issuer)
            if key in issuers:
                raise ConfigError(
                    file,
                    partner.slug,
                    "sign_in.issuer",
                    f"'{issuer}' is already the provider of {issuers[key]}; each partner and "
                    "the coalition need their own issuer",
                )
            issuers[key] = f"partner '{partner.slug}'"
        partners[partner.slug] = partner
        currencies[partner.currency_code] = partner.slug
    if not partners:
        raise ConfigError(folder, None, "-", "no partner files (*.toml) found")
    for partner in partners.values():
        for index, rule in enumerate(partner.conversions):
            if rule.target not in partners:
                raise ConfigError(
                    partner.source_file,
                    partner.slug,
                    f"conversions[{index}].to",
                    f"names unknown partner '{rule.target}'",
                )
            if partner.pool.remote and partners[rule.target].pool.remote:
                raise ConfigError(
                    partner.source_file,
                    partner.slug,
                    f"conversions[{index}].to",
                    f"'{partner.slug}' and '{rule.target}' both keep their points in their own "
                    "systems; conversions between two remote pools are not supported",
                )
    return Coalition(
        name=top.text("name"),
        settlement_currency=settlement_currency,
        partners=partners,
        sign_in=coalition_sign_in,
        fee_per_point_issued=fee_per_point,
        tiers=read_tiers(top, top.table["tiers"], partners) if "tiers" in top.table else None,
        challenges=read_challenges(top, top.table.get("challenges", []), partners),
    )


DEMO_DIRECTORY = Path(__file__).parent / "demo"
