"""Partner and conversion configuration, loaded from TOML files an operator edits.

One file per partner (``<slug>.toml``) plus ``coalition.toml`` for the coalition itself.
Amounts of money and rates are decimal *strings*; a TOML float is refused because it
cannot hold 0.012 exactly. Every error names the file, the partner and the field.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from partners.config.challenges import Challenge, read_challenges
from partners.config.conversions import ConversionRule, read_conversions
from partners.config.earning import EARNING_KEYS, EarningRules, read_earning
from partners.config.expiry import ExpiryPolicy, GiftingLimits, read_expiry, read_gifting
from partners.config.pools import Pool, read_pool
from partners.config.reader import MAX_POINTS, SLUG, ConfigError, Reader
from partners.config.sign_in import SignIn, StepUp, read_sign_in, read_step_up
from partners.config.tiers import Tiers, read_tiers

__all__ = ["MAX_POINTS", "ConfigError", "SignIn", "StepUp"]

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
    pool: Pool = field(default_factory=Pool)
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
    conversions = read_conversions(reader, file, slug)
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
        conversions=conversions,
        source_file=str(file),
        sign_in=_optional(reader, "sign_in", lambda table: read_sign_in(table, coalition=False)),
        step_up=_optional(reader, "step_up", read_step_up),
        pool=_optional(reader, "pool", read_pool) or Pool(),
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


@dataclass(frozen=True)
class ConfigFiles:
    """A coalition's configuration as parsed TOML tables: ``coalition.toml``'s and one per
    partner file (by file stem). ``folder`` names where they came from in error messages: a
    directory, or ``configuration`` for what the gateway keeps in its database."""

    coalition: dict[str, Any]
    partners: dict[str, dict[str, Any]]
    folder: Path

    def file(self, stem: str) -> Path:
        return self.folder / f"{stem}.toml"


def read_directory(directory: Path | str) -> ConfigFiles:
    """``coalition.toml`` and every other ``*.toml`` in ``directory`` (a partner each)."""
    folder = Path(directory)
    coalition_file = folder / "coalition.toml"
    if not coalition_file.is_file():
        raise ConfigError(coalition_file, None, "-", "file not found")
    partners = {
        file.stem: _load_toml(file)
        for file in sorted(folder.glob("*.toml"))
        if file.name != "coalition.toml"
    }
    return ConfigFiles(_load_toml(coalition_file), partners, folder)


def load_coalition(directory: Path | str) -> Coalition:
    """The coalition configured by the TOML files in ``directory``."""
    return build_coalition(read_directory(directory))


def build_coalition(files: ConfigFiles) -> Coalition:
    """Check and assemble the configuration in ``files``.

    Two sign-ins (partners' or the coalition's) may not name one provider issuer: tokens and
    identities are told apart by issuer, so a shared one would sign a member of one partner
    in as the other's customer (or as an operator).
    """
    folder = files.folder
    coalition_file = files.file("coalition")
    top = Reader(coalition_file, None, files.coalition)
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
    for stem, table in sorted(files.partners.items()):
        file = files.file(stem)
        partner = _read_partner(file, table, settlement_currency)
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


DEMO_DIRECTORY = Path(__file__).parent.parent / "demo"
