from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from partners.config import DEMO_DIRECTORY, ConfigError, EarnRule, Rounding, load_coalition

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


def test_demo_directory_loads_three_partners_with_exact_values() -> None:
    coalition = load_coalition(DEMO_DIRECTORY)
    assert coalition.settlement_currency == "EUR"
    assert set(coalition.partners) == {"skyway", "brewbar", "freshmart"}
    values = {slug: p.point_value for slug, p in coalition.partners.items()}
    assert values == {
        "skyway": Decimal("0.012"),
        "brewbar": Decimal("0.04"),
        "freshmart": Decimal("0.005"),
    }
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
