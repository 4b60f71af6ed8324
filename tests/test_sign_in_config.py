"""Sign-in and step-up configuration (partners/sign_in.py) and the settings around it."""

from __future__ import annotations

from pathlib import Path

import pytest
from joserfc.jwk import ECKey, RSAKey

from gateway.api.app import create_app
from gateway.api.settings import Settings, SettingsError
from gateway.kernel.sealing import new_master_key
from partners.config.coalition import load_coalition
from tests.test_config import COALITION, assert_names, partner, refusal, write


def one(tmp_path: Path, sign_in: str, coalition: str = COALITION) -> Path:
    return write(tmp_path, {"alpha": partner("alpha", "ALP", extra=sign_in)}, coalition)


def test_a_partner_names_its_provider_claim_and_step_up(tmp_path: Path) -> None:
    config = one(
        tmp_path,
        '[sign_in]\nissuer = "https://login.alpha.example/"\ncustomer_id_claim = "alpha_id"\n'
        'audiences = ["alpha-ios"]\n[step_up]\npoints = 750\n',
    )
    alpha = load_coalition(config).partners["alpha"]
    assert alpha.sign_in is not None and alpha.step_up is not None
    assert alpha.sign_in.issuer == "https://login.alpha.example/"  # exact: an issuer is a string
    assert alpha.sign_in.customer_id_claim == "alpha_id"
    assert alpha.sign_in.audiences == ("alpha-ios",)
    assert alpha.sign_in.mfa_acr == ("mfa",) and "otp" in alpha.sign_in.mfa_amr
    assert alpha.step_up.points == 750


def test_the_coalition_names_the_operator_role(tmp_path: Path) -> None:
    coalition = COALITION + '[sign_in]\ndevelopment = true\noperator_role = "ops"\n'
    loaded = load_coalition(one(tmp_path, "", coalition))
    assert loaded.sign_in is not None
    assert (loaded.sign_in.operator_claim, loaded.sign_in.operator_role) == ("roles", "ops")


@pytest.mark.parametrize(
    ("sign_in", "field"),
    [
        ('[sign_in]\nissuer = "http://login.alpha.example"\n', "sign_in.issuer"),
        ('[sign_in]\nissuer = "login.alpha.example"\n', "sign_in.issuer"),
        ('[sign_in]\nissuer = "https://a.example?x=1"\n', "sign_in.issuer"),
        ('[sign_in]\nissuer = "https://a.example"\ndevelopment = true\n', "sign_in.issuer"),
        ('[sign_in]\ncustomer_id_claim = "x"\n', "sign_in.issuer"),
        ('[sign_in]\ndevelopment = true\nscope = "profile"\n', "sign_in.scope"),
        ('[sign_in]\ndevelopment = true\noperator_role = "x"\n', "sign_in.operator_role"),
        ('[sign_in]\ndevelopment = true\ncustomer_id_claim = "a b"\n', "sign_in.customer_id_claim"),
        ("[step_up]\npoints = 0\n", "step_up.points"),
        (
            '[sign_in]\ndevelopment = true\ntoken_endpoint_auth_method = "client_secret_jwt"\n',
            "sign_in.token_endpoint_auth_method",
        ),
        (
            '[sign_in]\ndevelopment = true\ntoken_endpoint_auth_method = "private_key_jwt"\n',
            "sign_in.token_endpoint_auth_method",
        ),
        (
            '[sign_in]\ndevelopment = true\nintrospection_endpoint = "https://a.example/i"\n',
            "sign_in.introspection_endpoint",
        ),
        (
            "[sign_in]\ndevelopment = true\nintrospection = true\n"
            'introspection_endpoint = "http://a.example/i"\n',
            "sign_in.introspection_endpoint",
        ),
        ('[sign_in]\ndevelopment = true\nintrospection = "yes"\n', "sign_in.introspection"),
        (
            '[sign_in]\ndevelopment = true\nclient_assertion_audience = "token_endpoint"\n',
            "sign_in.client_assertion_audience",
        ),
        (
            '[sign_in]\nissuer = "https://a.example"\n'
            'token_endpoint_auth_method = "private_key_jwt"\nclient_assertion_audience = "x"\n',
            "sign_in.client_assertion_audience",
        ),
        ("[step_up]\n", "step_up.points"),
    ],
)
def test_bad_sign_in_settings_are_refused_by_name(tmp_path: Path, sign_in: str, field: str) -> None:
    error = refusal(one(tmp_path, sign_in))
    assert (error.partner, error.field) == ("alpha", field)


def _issuer(url: str) -> str:
    return f'[sign_in]\nissuer = "{url}"\n'


@pytest.mark.parametrize(
    "other",
    [
        "https://login.shared.example",
        "https://login.shared.example/",
        "https://LOGIN.Shared.example:443",
    ],
)
def test_two_partners_cannot_share_a_provider_issuer(tmp_path: Path, other: str) -> None:
    files = {
        "alpha": partner("alpha", "ALP", extra=_issuer("https://login.shared.example")),
        "beta": partner("beta", "BET", extra=_issuer(other)),
    }
    error = refusal(write(tmp_path, files))
    assert_names(error, tmp_path / "beta.toml", "beta", "sign_in.issuer")
    assert "partner 'alpha'" in error.problem


def test_a_partner_cannot_share_the_coalitions_provider_issuer(tmp_path: Path) -> None:
    coalition = COALITION + _issuer("https://login.shared.example")
    files = {"alpha": partner("alpha", "ALP", extra=_issuer("https://login.shared.example"))}
    error = refusal(write(tmp_path, files, coalition))
    assert_names(error, tmp_path / "alpha.toml", "alpha", "sign_in.issuer")
    assert "the coalition" in error.problem


def test_distinct_issuers_and_development_providers_load(tmp_path: Path) -> None:
    coalition = COALITION + "[sign_in]\ndevelopment = true\n"
    files = {
        "alpha": partner("alpha", "ALP", extra=_issuer("https://login.shared.example/alpha")),
        "beta": partner("beta", "BET", extra=_issuer("https://login.shared.example/beta")),
        "gamma": partner("gamma", "GAM", extra="[sign_in]\ndevelopment = true\n"),
        "delta": partner("delta", "DEL", extra="[sign_in]\ndevelopment = true\n"),
    }
    loaded = load_coalition(write(tmp_path, files, coalition))
    assert set(loaded.partners) == {"alpha", "beta", "gamma", "delta"}


def test_the_coalition_slug_is_reserved(tmp_path: Path) -> None:
    text = partner("alpha", "ALP").replace('slug = "alpha"', 'slug = "coalition"')
    error = refusal(write(tmp_path, {"alpha": text}))
    assert error.field == "slug" and "reserved" in error.problem


def test_a_real_provider_without_credentials_stops_the_start(tmp_path: Path) -> None:
    config = one(tmp_path, '[sign_in]\nissuer = "https://login.alpha.example"\n')
    with pytest.raises(SettingsError, match="COALITION_OIDC_ALPHA_CLIENT_ID"):
        create_app(Settings(config_dir=config, demo_data=False))
    credentials = (
        ("COALITION_OIDC_ALPHA_CLIENT_ID", "gw"),
        ("COALITION_OIDC_ALPHA_CLIENT_SECRET", "s"),
    )
    create_app(Settings(config_dir=config, demo_data=False, oidc_credentials=credentials))


def test_client_authentication_and_introspection_settings_load(tmp_path: Path) -> None:
    config = one(
        tmp_path,
        '[sign_in]\nissuer = "https://tenant.auth.example/"\n'
        'token_endpoint_auth_method = "private_key_jwt"\nintrospection = true\n'
        'introspection_endpoint = "https://tenant.auth.example/oauth/introspect"\n',
    )
    sign_in = load_coalition(config).partners["alpha"].sign_in
    assert sign_in is not None
    assert sign_in.issuer == "https://tenant.auth.example/"
    assert sign_in.token_endpoint_auth_method == "private_key_jwt"
    assert sign_in.introspection is True
    assert sign_in.introspection_endpoint == "https://tenant.auth.example/oauth/introspect"
    default = load_coalition(one(tmp_path, _issuer("https://b.example"))).partners["alpha"]
    assert default.sign_in is not None
    assert default.sign_in.token_endpoint_auth_method == "client_secret_basic"
    assert default.sign_in.introspection is False


def test_private_key_jwt_needs_a_usable_private_key_at_start(tmp_path: Path) -> None:
    config = one(
        tmp_path,
        '[sign_in]\nissuer = "https://login.alpha.example"\n'
        'token_endpoint_auth_method = "private_key_jwt"\n',
    )
    only_id = (("COALITION_OIDC_ALPHA_CLIENT_ID", "gw"),)
    with pytest.raises(SettingsError, match="COALITION_OIDC_ALPHA_PRIVATE_KEY"):
        create_app(Settings(config_dir=config, demo_data=False, oidc_credentials=only_id))
    secret_only = (*only_id, ("COALITION_OIDC_ALPHA_CLIENT_SECRET", "s"))
    with pytest.raises(SettingsError, match="COALITION_OIDC_ALPHA_PRIVATE_KEY"):
        create_app(Settings(config_dir=config, demo_data=False, oidc_credentials=secret_only))
    garbage = (*only_id, ("COALITION_OIDC_ALPHA_PRIVATE_KEY", "not a key"))
    with pytest.raises(SettingsError, match="not a PEM or JWK private key"):
        create_app(Settings(config_dir=config, demo_data=False, oidc_credentials=garbage))
    public = RSAKey.generate_key(2048, private=True).as_pem(private=False).decode()
    public_only = (*only_id, ("COALITION_OIDC_ALPHA_PRIVATE_KEY", public))
    with pytest.raises(SettingsError, match="private RSA key"):
        create_app(Settings(config_dir=config, demo_data=False, oidc_credentials=public_only))
    key = ECKey.generate_key("P-256", private=True).as_pem(private=True).decode()
    usable = (*only_id, ("COALITION_OIDC_ALPHA_PRIVATE_KEY", key))
    create_app(Settings(config_dir=config, demo_data=False, oidc_credentials=usable))


def test_production_refuses_development_providers_and_needs_a_session_secret() -> None:
    with pytest.raises(SettingsError, match="COALITION_SESSION_SECRET"):
        Settings(environment="production")
    with pytest.raises(SettingsError, match="development provider"):
        create_app(
            Settings(environment="production", session_secret="x" * 32, master_key=new_master_key())
        )
    with pytest.raises(SettingsError, match="COALITION_ENV"):
        Settings(environment="staging")


def test_settings_read_the_oidc_credentials_and_public_url_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "COALITION_OIDC_SKYWAY_CLIENT_ID": "gw",
            "COALITION_PUBLIC_URL": "https://loyalty.example/",
            "PORT": "9000",
            "UNRELATED": "x",
        }
    )
    assert settings.oidc_credential("COALITION_OIDC_SKYWAY_CLIENT_ID") == "gw"
    assert settings.oidc_credential("UNRELATED") is None
    assert settings.public_url == "https://loyalty.example"
    assert Settings.from_env({"PORT": "9000"}).public_url == "http://127.0.0.1:9000"
