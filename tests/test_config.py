from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from partners.config.coalition import (
    DEMO_DIRECTORY,
    ConfigError,
    EarnRule,
    Rounding,
    load_coalition,
)

COALITION = 'name = "Test coalition"\nsettlement_currency = "EUR"\n'
RULE = 'to = "beta"\nrate = "0.5"\neffective_from = 2026-01-01\n'


def partner(slug: str, code: str, *rules: str, point_value: str = '"0.01"', extra: str = "") -> str:
    head = (
        f'slug = "{slug}"\nname = "{slug.title()}"\npoint_value = {point_value}\n{extra}\n'
        f'[currency]\ncode = "{code}"\nname = "points"\n\n'
        '[earn]\npoints_per_unit = "1"\n'
    )
    return head + "".join(f"\n[[conversions]]\n{rule}" for rule in rules)


def write(directory: Path, files: dict[str, str], coalition: str | None = COALITION) -> Path:
    if coalition is not None:
        (directory / "coalition.toml").write_text(coalition)
    for name, text in files.items():
        (directory / f"{name}.toml").write_text(text)
    return directory


def pair(tmp_path: Path, *rules: str) -> Path:
    files = {"alpha": partner("alpha", "ALP", *rules), "beta": partner("beta", "BET")}
    return write(tmp_path, files)


def refusal(directory: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_coalition(directory)
    return caught.value


def assert_names(error: ConfigError, file: Path, partner_slug: str | None, field: str) -> None:
    assert error.file == str(file)
    assert error.partner == partner_slug
    assert error.field == field
    assert str(file) in str(error)
    assert f"field '{field}'" in str(error)
    if partner_slug is not None:
        assert f"partner '{partner_slug}'" in str(error)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def test_demo_directory_loads_four_partners_with_exact_values() -> None:
    coalition = load_coalition(DEMO_DIRECTORY)
    assert coalition.settlement_currency == "EUR"
    assert set(coalition.partners) == {"skyway", "brewbar", "freshmart", "harbour"}
    values = {slug: p.point_value for slug, p in coalition.partners.items()}
    assert values == {
        "skyway": Decimal("0.012"),
        "brewbar": Decimal("0.04"),
        "freshmart": Decimal("0.005"),
        "harbour": Decimal("0.008"),
    }
    assert [slug for slug, p in coalition.partners.items() if p.pool.remote] == ["harbour"]
    assert all(isinstance(v, Decimal) for v in values.values())
    skyway = coalition.partners["skyway"]
    assert {rule.target for rule in skyway.conversions} == {"brewbar", "freshmart"}
    assert len(coalition.rules("skyway", "brewbar")) == 2


def test_minimal_tmp_directory_loads(tmp_path: Path) -> None:
    coalition = load_coalition(pair(tmp_path, RULE + 'fee_percent = "99.99"\n'))
    rule = coalition.rules("alpha", "beta")[0]
    assert (rule.rate, rule.fee_percent) == (Decimal("0.5"), Decimal("99.99"))
    assert (rule.fee_fixed, rule.min_points, rule.enabled) == (0, 1, True)
    assert rule.effective_from == utc(2026, 1, 1)
    assert rule.effective_until is None


@pytest.mark.parametrize("rate", ['"-0.25"', '"0"', '"0.000"'])
def test_non_positive_rate_is_refused(tmp_path: Path, rate: str) -> None:
    error = refusal(pair(tmp_path, f'to = "beta"\nrate = {rate}\neffective_from = 2026-01-01\n'))
    assert_names(error, tmp_path / "alpha.toml", "alpha", "conversions[0].rate")
    assert "greater than zero" in error.problem


def test_float_point_value_is_refused(tmp_path: Path) -> None:
    write(tmp_path, {"alpha": partner("alpha", "ALP", point_value="0.012")})
    error = refusal(tmp_path)
    assert_names(error, tmp_path / "alpha.toml", "alpha", "point_value")
    assert "float" in error.problem and '"0.012"' in error.problem


def test_float_rate_is_refused(tmp_path: Path) -> None:
    error = refusal(pair(tmp_path, 'to = "beta"\nrate = 0.25\neffective_from = 2026-01-01\n'))
    assert_names(error, tmp_path / "alpha.toml", "alpha", "conversions[0].rate")
    assert "float" in error.problem


def test_rule_naming_unknown_partner_is_refused(tmp_path: Path) -> None:
    error = refusal(pair(tmp_path, RULE.replace('"beta"', '"gamma"')))
    assert_names(error, tmp_path / "alpha.toml", "alpha", "conversions[0].to")
    assert "gamma" in error.problem


def test_duplicate_currency_code_is_refused(tmp_path: Path) -> None:
    write(tmp_path, {"alpha": partner("alpha", "ALP"), "beta": partner("beta", "ALP")})
    error = refusal(tmp_path)
    assert_names(error, tmp_path / "beta.toml", "beta", "currency.code")
    assert "'ALP'" in error.problem and "'alpha'" in error.problem


def test_currency_code_with_trailing_newline_is_refused(tmp_path: Path) -> None:
    write(tmp_path, {"alpha": partner("alpha", "ALP\\n"), "beta": partner("beta", "ALP")})
    error = refusal(tmp_path)
    assert_names(error, tmp_path / "alpha.toml", "alpha", "currency.code")


def test_slug_not_matching_file_name_is_refused(tmp_path: Path) -> None:
    write(tmp_path, {"alpha": partner("alfa", "ALP")})
    error = refusal(tmp_path)
    assert_names(error, tmp_path / "alpha.toml", "alfa", "slug")
    assert "'alpha'" in error.problem


def test_two_open_ended_rules_for_one_pair_overlap(tmp_path: Path) -> None:
    later = RULE.replace("2026-01-01", "2027-01-01")
    error = refusal(pair(tmp_path, RULE, later))
    assert_names(error, tmp_path / "alpha.toml", "alpha", "conversions[1].effective_from")
    assert "overlaps" in error.problem and "'beta'" in error.problem


def test_rule_whose_effective_until_overlaps_the_next_is_refused(tmp_path: Path) -> None:
    first = RULE + "effective_until = 2027-06-01\n"
    second = RULE.replace("2026-01-01", "2027-01-01")
    error = refusal(pair(tmp_path, first, second))
    assert_names(error, tmp_path / "alpha.toml", "alpha", "conversions[1].effective_from")


def test_rule_converting_into_itself_is_refused(tmp_path: Path) -> None:
    error = refusal(pair(tmp_path, RULE, RULE.replace('"beta"', '"alpha"')))
    assert_names(error, tmp_path / "alpha.toml", "alpha", "conversions[1].to")
    assert "itself" in error.problem


@pytest.mark.parametrize(
    ("where", "field"),
    [("extra", "point_vaule"), ("rule", "conversions[0].fee_percnt")],
)
def test_unknown_key_is_refused_as_typo(tmp_path: Path, where: str, field: str) -> None:
    if where == "extra":
        write(tmp_path, {"alpha": partner("alpha", "ALP", extra='point_vaule = "1"')})
    else:
        pair(tmp_path, RULE + 'fee_percnt = "1"\n')
    error = refusal(tmp_path)
    assert_names(error, tmp_path / "alpha.toml", "alpha", field)
    assert "typo" in error.problem


def test_unknown_key_in_coalition_file_is_refused(tmp_path: Path) -> None:
    write(tmp_path, {"alpha": partner("alpha", "ALP")}, COALITION + 'settlement = "EUR"\n')
    assert_names(refusal(tmp_path), tmp_path / "coalition.toml", None, "settlement")


def test_max_points_below_min_points_is_refused(tmp_path: Path) -> None:
    error = refusal(pair(tmp_path, RULE + "min_points = 500\nmax_points = 100\n"))
    assert_names(error, tmp_path / "alpha.toml", "alpha", "conversions[0].max_points")
    assert "500" in error.problem and "100" in error.problem


@pytest.mark.parametrize("percent", ["100", "100.0", "250"])
def test_fee_percent_of_100_or_more_is_refused(tmp_path: Path, percent: str) -> None:
    error = refusal(pair(tmp_path, RULE + f'fee_percent = "{percent}"\n'))
    assert_names(error, tmp_path / "alpha.toml", "alpha", "conversions[0].fee_percent")


def test_invalid_toml_is_refused(tmp_path: Path) -> None:
    write(tmp_path, {"alpha": 'slug = "alpha\nname = = 1\n'})
    error = refusal(tmp_path)
    assert_names(error, tmp_path / "alpha.toml", None, "-")
    assert "not valid TOML" in error.problem


def test_local_datetime_without_offset_is_refused(tmp_path: Path) -> None:
    rule = RULE.replace("2026-01-01", "2026-01-01T00:00:00")
    error = refusal(pair(tmp_path, rule))
    assert_names(error, tmp_path / "alpha.toml", "alpha", "conversions[0].effective_from")
    assert "offset" in error.problem


def test_datetime_with_offset_is_converted_to_utc(tmp_path: Path) -> None:
    rule = RULE.replace("2026-01-01", "2026-01-01T02:00:00+02:00")
    coalition = load_coalition(pair(tmp_path, rule))
    assert coalition.rules("alpha", "beta")[0].effective_from == utc(2026, 1, 1)


def test_missing_coalition_file_is_refused(tmp_path: Path) -> None:
    write(tmp_path, {"alpha": partner("alpha", "ALP")}, coalition=None)
    error = refusal(tmp_path)
    assert_names(error, tmp_path / "coalition.toml", None, "-")
    assert "not found" in error.problem


def consecutive(tmp_path: Path, *, second_enabled: bool = True) -> Path:
    first = RULE + "effective_until = 2027-01-01\n"
    second = RULE.replace('"0.5"', '"0.6"').replace("2026-01-01", "2027-01-01")
    return pair(tmp_path, first, second + f"enabled = {str(second_enabled).lower()}\n")


def test_consecutive_rules_sharing_a_boundary_load(tmp_path: Path) -> None:
    rules = load_coalition(consecutive(tmp_path)).rules("alpha", "beta")
    assert [rule.rate for rule in rules] == [Decimal("0.5"), Decimal("0.6")]
    assert rules[0].effective_until == rules[1].effective_from == utc(2027, 1, 1)


@pytest.mark.parametrize(
    ("moment", "rate"),
    [
        (utc(2025, 12, 31, 23, 59, 59), None),
        (utc(2026, 1, 1), Decimal("0.5")),
        (utc(2026, 12, 31, 23, 59, 59), Decimal("0.5")),
        (utc(2027, 1, 1), Decimal("0.6")),
        (utc(2030, 1, 1), Decimal("0.6")),
    ],
)
def test_rule_in_force_is_picked_by_moment(
    tmp_path: Path, moment: datetime, rate: Decimal | None
) -> None:
    rule = load_coalition(consecutive(tmp_path)).rule_in_force("alpha", "beta", moment)
    assert (rule.rate if rule else None) == rate


def test_rule_in_force_ignores_disabled_rules(tmp_path: Path) -> None:
    coalition = load_coalition(consecutive(tmp_path, second_enabled=False))
    assert coalition.rule_in_force("alpha", "beta", utc(2026, 6, 1)) is not None
    assert coalition.rule_in_force("alpha", "beta", utc(2027, 6, 1)) is None
    assert coalition.rules_in_force("alpha", utc(2027, 6, 1)) == []
    assert coalition.rule_in_force("beta", "alpha", utc(2026, 6, 1)) is None
    assert coalition.rule_in_force("nobody", "alpha", utc(2026, 6, 1)) is None


@pytest.mark.parametrize(
    ("per_unit", "amount", "expected"),
    [
        ("1", "2.5", {"down": 2, "up": 3, "half_up": 3, "half_even": 2}),
        ("1", "3.5", {"down": 3, "up": 4, "half_up": 4, "half_even": 4}),
        ("1", "2.01", {"down": 2, "up": 3, "half_up": 2, "half_even": 2}),
        ("2", "10.00", {"down": 20, "up": 20, "half_up": 20, "half_even": 20}),
        ("0.1", "25", {"down": 2, "up": 3, "half_up": 3, "half_even": 2}),
        ("1.5", "9.99", {"down": 14, "up": 15, "half_up": 15, "half_even": 15}),
    ],
)
def test_earn_points_round_per_configured_rounding(
    per_unit: str, amount: str, expected: dict[str, int]
) -> None:
    for mode, points in expected.items():
        rule = EarnRule(Decimal(per_unit), Rounding(mode), "EUR")
        assert rule.points_for(Decimal(amount)) == points, mode


def test_demo_earn_rules_use_configured_rounding() -> None:
    partners = load_coalition(DEMO_DIRECTORY).partners
    assert partners["skyway"].earn.points_for(Decimal("10.75")) == 21
    assert partners["brewbar"].earn.points_for(Decimal("2.50")) == 3
    assert partners["freshmart"].earn.points_for(Decimal("3.99")) == 19
    assert partners["brewbar"].earn.purchase_currency == "EUR"


# ---- [pool]: where a partner's points are kept ----------------------------------------------


def pooled(tmp_path: Path, pool: str, *rules: str) -> Path:
    """``alpha`` with ``pool`` as its [pool] table (plus ``rules``), and a hosted ``beta``."""
    files = {
        "alpha": partner("alpha", "ALP", *rules, extra=f"[pool]\n{pool}"),
        "beta": partner("beta", "BET"),
    }
    return write(tmp_path, files)


def pool_refusal(tmp_path: Path, pool: str, field: str) -> str:
    error = refusal(pooled(tmp_path, pool))
    assert_names(error, tmp_path / "alpha.toml", "alpha", f"pool.{field}")
    return error.problem


def test_a_partner_without_a_pool_table_is_hosted_by_the_gateway(tmp_path: Path) -> None:
    coalition = load_coalition(pair(tmp_path))
    pool = coalition.partners["alpha"].pool
    assert (pool.hosted, pool.remote, pool.base_url, pool.development) == (True, False, None, False)
    assert not coalition.is_remote("alpha") and not coalition.is_remote("nobody")


def test_hosted_gateway_spelled_out_is_the_default(tmp_path: Path) -> None:
    pool = load_coalition(pooled(tmp_path, 'hosted = "gateway"\n')).partners["alpha"].pool
    assert pool.hosted and not pool.remote and pool.base_url is None


@pytest.mark.parametrize(
    ("base_url", "kept"),
    [
        ("https://points.alpha.example/api/v1/", "https://points.alpha.example/api/v1"),
        ("https://points.alpha.example", "https://points.alpha.example"),
        ("https://points.alpha.example:8443//", "https://points.alpha.example:8443"),
        ("http://127.0.0.1:8123/", "http://127.0.0.1:8123"),
        ("http://localhost:9000/points", "http://localhost:9000/points"),
        ("http://[::1]:8080", "http://[::1]:8080"),
    ],
)
def test_a_remote_pool_with_a_base_url(tmp_path: Path, base_url: str, kept: str) -> None:
    text = f'hosted = "remote"\nbase_url = "{base_url}"\n'
    coalition = load_coalition(pooled(tmp_path, text))
    pool = coalition.partners["alpha"].pool
    assert (pool.remote, pool.hosted, pool.development) == (True, False, False)
    assert pool.base_url == kept  # the trailing slash is dropped
    assert pool.timeout_seconds == 5.0
    assert coalition.is_remote("alpha") and not coalition.is_remote("beta")


@pytest.mark.parametrize(("written", "seconds"), [("2.5", 2.5), ("120", 120.0), ("1", 1.0)])
def test_a_remote_pools_timeout(tmp_path: Path, written: str, seconds: float) -> None:
    text = f'hosted = "remote"\nbase_url = "https://a.example"\ntimeout_seconds = {written}\n'
    pool = load_coalition(pooled(tmp_path, text)).partners["alpha"].pool
    assert pool.timeout_seconds == seconds and isinstance(pool.timeout_seconds, float)


def test_a_development_remote_pool_needs_no_base_url(tmp_path: Path) -> None:
    text = 'hosted = "remote"\ndevelopment = true\ntimeout_seconds = 3\n'
    pool = load_coalition(pooled(tmp_path, text)).partners["alpha"].pool
    assert (pool.remote, pool.development, pool.base_url) == (True, True, None)
    assert pool.timeout_seconds == 3.0


def test_development_false_with_a_base_url_is_a_plain_remote_pool(tmp_path: Path) -> None:
    text = 'hosted = "remote"\ndevelopment = false\nbase_url = "https://a.example/"\n'
    pool = load_coalition(pooled(tmp_path, text)).partners["alpha"].pool
    assert (pool.development, pool.base_url) == (False, "https://a.example")


@pytest.mark.parametrize("where", ['"cloud"', '"Remote"', '"hosted"', "true"])
def test_an_unknown_kind_of_pool_is_refused(tmp_path: Path, where: str) -> None:
    problem = pool_refusal(tmp_path, f"hosted = {where}\n", "hosted")
    assert "must be" in problem


def test_the_choices_of_hosted_are_named(tmp_path: Path) -> None:
    problem = pool_refusal(tmp_path, 'hosted = "cloud"\n', "hosted")
    assert '"gateway" or "remote"' in problem and "'cloud'" in problem


@pytest.mark.parametrize(
    "pool",
    [
        'hosted = "remote"\n',
        'hosted = "remote"\ndevelopment = false\n',
        'hosted = "remote"\ntimeout_seconds = 3\n',
    ],
    ids=["nothing", "development-false", "only-timeout"],
)
def test_a_remote_pool_without_base_url_or_development_is_refused(
    tmp_path: Path, pool: str
) -> None:
    problem = pool_refusal(tmp_path, pool, "base_url")
    assert "either base_url or development = true" in problem


def test_a_remote_pool_with_both_base_url_and_development_is_refused(tmp_path: Path) -> None:
    text = 'hosted = "remote"\ndevelopment = true\nbase_url = "https://a.example"\n'
    problem = pool_refusal(tmp_path, text, "base_url")
    assert "not both" in problem


@pytest.mark.parametrize(
    "base_url",
    [
        "http://points.alpha.example/api",
        "http://10.0.0.5:8080",
        "http://127.0.0.1.nip.io",
        "http://localhost.alpha.example",
    ],
)
def test_plain_http_to_a_host_other_than_loopback_is_refused(tmp_path: Path, base_url: str) -> None:
    problem = pool_refusal(tmp_path, f'hosted = "remote"\nbase_url = "{base_url}"\n', "base_url")
    assert "must use https" in problem


@pytest.mark.parametrize(
    "base_url",
    [
        "ftp://points.alpha.example",
        "points.alpha.example/api",
        "https://",
        "https://points.alpha.example/api?tenant=1",
        "/api/v1",
    ],
)
def test_a_base_url_that_is_not_an_absolute_url_is_refused(tmp_path: Path, base_url: str) -> None:
    problem = pool_refusal(tmp_path, f'hosted = "remote"\nbase_url = "{base_url}"\n', "base_url")
    assert "absolute https URL" in problem and repr(base_url) in problem


@pytest.mark.parametrize(
    ("setting", "field"),
    [
        ('base_url = "https://a.example"', "base_url"),
        ("development = true", "development"),
        ("timeout_seconds = 5", "timeout_seconds"),
    ],
)
@pytest.mark.parametrize("hosted", ["", 'hosted = "gateway"\n'], ids=["default", "explicit"])
def test_remote_settings_on_a_hosted_pool_are_refused(
    tmp_path: Path, setting: str, field: str, hosted: str
) -> None:
    problem = pool_refusal(tmp_path, f"{hosted}{setting}\n", field)
    assert 'only to a pool with hosted = "remote"' in problem


@pytest.mark.parametrize("timeout", ['"5"', "0", "0.0", "-1", "120.5", "121", "true", "nan", "inf"])
def test_a_timeout_that_is_not_a_number_of_seconds_up_to_120_is_refused(
    tmp_path: Path, timeout: str
) -> None:
    text = f'hosted = "remote"\nbase_url = "https://a.example"\ntimeout_seconds = {timeout}\n'
    problem = pool_refusal(tmp_path, text, "timeout_seconds")
    assert "up to 120" in problem


def test_the_timeout_of_a_development_pool_is_checked_too(tmp_path: Path) -> None:
    text = 'hosted = "remote"\ndevelopment = true\ntimeout_seconds = 0\n'
    assert "up to 120" in pool_refusal(tmp_path, text, "timeout_seconds")


@pytest.mark.parametrize(
    "pool",
    [
        'hosted = "remote"\nbase_url = "https://a.example"\ntoken = "secret"\n',
        'hosted = "remote"\nbaseurl = "https://a.example"\n',
        'hosted = "gateway"\ntoken = "secret"\n',
    ],
)
def test_an_unknown_key_in_the_pool_table_is_refused(tmp_path: Path, pool: str) -> None:
    field = "baseurl" if "baseurl" in pool else "token"
    assert "not a known setting" in pool_refusal(tmp_path, pool, field)


def test_a_pool_that_is_not_a_table_is_refused(tmp_path: Path) -> None:
    files = {
        "alpha": partner("alpha", "ALP", extra='pool = "remote"'),
        "beta": partner("beta", "BET"),
    }
    error = refusal(write(tmp_path, files))
    assert_names(error, tmp_path / "alpha.toml", "alpha", "pool")


REMOTE_POOL = '[pool]\nhosted = "remote"\nbase_url = "https://{slug}.example"\n'


def test_a_conversion_between_two_remote_pools_is_refused_naming_both(tmp_path: Path) -> None:
    files = {
        "alpha": partner("alpha", "ALP", RULE, extra=REMOTE_POOL.format(slug="alpha")),
        "beta": partner("beta", "BET", extra=REMOTE_POOL.format(slug="beta")),
    }
    error = refusal(write(tmp_path, files))
    assert_names(error, tmp_path / "alpha.toml", "alpha", "conversions[0].to")
    assert "'alpha' and 'beta'" in error.problem
    assert "two remote pools" in error.problem


def test_the_refused_rule_is_named_by_its_index(tmp_path: Path) -> None:
    to_gamma = 'to = "gamma"\nrate = "2"\neffective_from = 2026-01-01\n'
    files = {
        "alpha": partner("alpha", "ALP", to_gamma, RULE, extra=REMOTE_POOL.format(slug="alpha")),
        "beta": partner("beta", "BET", extra=REMOTE_POOL.format(slug="beta")),
        "gamma": partner("gamma", "GAM"),
    }
    error = refusal(write(tmp_path, files))
    assert_names(error, tmp_path / "alpha.toml", "alpha", "conversions[1].to")
    assert "'alpha' and 'beta'" in error.problem


def test_a_development_pool_counts_as_remote_for_the_conversion_check(tmp_path: Path) -> None:
    development = '[pool]\nhosted = "remote"\ndevelopment = true\n'
    back = 'to = "alpha"\nrate = "2"\neffective_from = 2026-01-01\n'
    files = {
        "alpha": partner("alpha", "ALP", extra=REMOTE_POOL.format(slug="alpha")),
        "beta": partner("beta", "BET", back, extra=development),
    }
    error = refusal(write(tmp_path, files))
    assert_names(error, tmp_path / "beta.toml", "beta", "conversions[0].to")
    assert "'beta' and 'alpha'" in error.problem


def test_conversions_between_a_remote_and_a_hosted_pool_load_both_ways(tmp_path: Path) -> None:
    back = 'to = "alpha"\nrate = "2"\neffective_from = 2026-01-01\n'
    files = {
        "alpha": partner("alpha", "ALP", RULE, extra=REMOTE_POOL.format(slug="alpha")),
        "beta": partner("beta", "BET", back),
    }
    coalition = load_coalition(write(tmp_path, files))
    assert coalition.is_remote("alpha") and not coalition.is_remote("beta")
    assert coalition.rule_in_force("alpha", "beta", utc(2026, 6, 1)) is not None
    assert coalition.rule_in_force("beta", "alpha", utc(2026, 6, 1)) is not None
