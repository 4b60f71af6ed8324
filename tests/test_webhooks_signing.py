"""Our Standard Webhooks signatures against the reference implementation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from gateway.webhooks import signing


def test_a_secret_is_whsec_and_32_random_bytes():
    secret = signing.new_secret()
    assert secret.startswith("whsec_") and len(signing.key_of(secret)) == 32
    assert signing.new_secret() != secret
    with pytest.raises(ValueError, match="whsec_"):
        signing.key_of("not-a-secret")


def test_signatures_match_the_reference_and_the_raw_recipe():
    secret, body, now = signing.new_secret(), b'{"type":"points.earned"}', int(time.time())
    ours = signing.signature(secret, "msg_1", now, body)
    reference = Webhook(secret).sign("msg_1", datetime.fromtimestamp(now, UTC), body)
    assert ours == reference
    mac = hmac.new(signing.key_of(secret), f"msg_1.{now}.".encode() + body, hashlib.sha256)
    assert ours == "v1," + base64.b64encode(mac.digest()).decode()
    headers = signing.headers([secret], "msg_1", now, body)
    assert Webhook(secret).verify(body, headers) == {"type": "points.earned"}
    assert headers["webhook-timestamp"] == str(now)


def test_while_a_secret_is_rotated_both_sign():
    old, new, body, now = signing.new_secret(), signing.new_secret(), b"{}", int(time.time())
    headers = signing.headers([new, old], "msg_2", now, body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(body, headers)
