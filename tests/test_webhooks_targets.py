"""Which URLs the gateway calls: the form everywhere, public addresses only in production."""

from __future__ import annotations

import pytest

from gateway.webhooks.targets import Refused, Target, check, parse


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/",
        "https://user@example.com/",
        "https://:pw@example.com/",
        "https:///path",
        "https://example.com/#fragment",
        "https://example.com/\x00",
        "https://example.com/" + "a" * 2048,
        "https://example.com:70000/",
    ],
)
def test_malformed_urls_are_refused_everywhere(url: str):
    with pytest.raises(Refused):
        parse(url, production=False)


def test_development_allows_http_and_loopback():
    assert parse("http://127.0.0.1:8080/hook", production=False).port == 8080
    with pytest.raises(Refused, match="https"):
        parse("http://example.com/", production=True)


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.2/",
        "https://10.1.2.3/",
        "https://172.16.0.1/",
        "https://192.168.0.1/",
        "https://169.254.169.254/",
        "https://100.100.100.100/",
        "https://0.0.0.0/",
        "https://240.0.0.1/",
        "https://[::1]/",
        "https://[::]/",
        "https://[fe80::1]/",
        "https://[fc00::1]/",
        "https://[::ffff:127.0.0.1]/",
        "https://[2002:0a00:0001::1]/",
        "https://localhost/",
    ],
)
async def test_production_refuses_addresses_that_are_not_public(url: str):
    with pytest.raises(Refused, match="non-public"):
        await check(url, production=True)


async def test_production_connects_to_the_address_it_checked():
    target = await check("https://93.184.216.34:8443/hook?x=1", production=True)
    assert target.address == "93.184.216.34" and target.host == "93.184.216.34"
    assert target.request_url() == "https://93.184.216.34:8443/hook?x=1"
    named = Target("https://hooks.example/in", "hooks.example", 443, "2606:4700::1")
    assert named.request_url() == "https://[2606:4700::1]/in"
    assert (await check("http://127.0.0.1/", production=False)).address is None


async def test_an_unresolvable_host_is_refused_in_production():
    with pytest.raises(Refused, match="cannot be resolved"):
        await check("https://no-such-host.invalid/", production=True)
