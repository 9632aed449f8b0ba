"""The security settings: parsed and checked at start, bad values named, secrets never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from queue_system.config.settings import load_settings
from queue_system.errors import ConfigError
from queue_system.kinds.webhook_security import egress_policy, signing_keys
from queue_system.storage.rate_limit import Rate
from queue_system.transports.signing import new_secret


def test_defaults_are_closed() -> None:
    s = load_settings({})
    assert s.api.keys == "" and s.api.auth == "enabled" and s.api.rate_limit is None
    assert s.security.follow_redirects is False and signing_keys(s) == ()
    assert egress_policy(s).check_ip("127.0.0.1") is not None
    assert egress_policy(s).check_ip("93.184.216.34") is None


def test_values_are_parsed(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("k" * 20 + "\n")
    secret = new_secret()
    s = load_settings(
        {
            "API_KEYS": " a-key-0123456789abcd , b-key-0123456789abcd ",
            "API_KEYS_FILE": str(keys),
            "API_RATE_LIMIT": "100/s",
            "EGRESS_ALLOW_CIDRS": "10.0.0.0/8",
            "EGRESS_ALLOW_PORTS": "443",
            "WEBHOOK_SIGNING_SECRET": f" {secret}  {new_secret()} ",
            "WEBHOOK_FOLLOW_REDIRECTS": "yes",
        }
    )
    assert s.api.keys == "a-key-0123456789abcd,b-key-0123456789abcd" and s.api.keys_file == keys
    assert s.api.rate_limit == Rate(count=100, period_ms=1000, burst=100)
    assert egress_policy(s).check_ip("10.1.2.3") is None and egress_policy(s).check_port(80) is not None
    assert len(signing_keys(s)) == 2 and s.security.follow_redirects is True
    shown = repr(s)
    assert secret not in shown and "a-key" not in shown


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"EGRESS_ALLOW_CIDRS": "10.0.0.0/33"}, "EGRESS_ALLOW_CIDRS"),
        ({"EGRESS_DENY_CIDRS": "example.com"}, "EGRESS_DENY_CIDRS"),
        ({"EGRESS_ALLOW_PORTS": "0"}, "EGRESS_ALLOW_PORTS"),
        ({"API_RATE_LIMIT": "fast"}, "API_RATE_LIMIT"),
        ({"API_AUTH": "off"}, "API_AUTH"),
        ({"API_KEYS_FILE": "/nonexistent/keys"}, "API_KEYS_FILE"),
        ({"WEBHOOK_FOLLOW_REDIRECTS": "maybe"}, "WEBHOOK_FOLLOW_REDIRECTS"),
        ({"WEBHOOK_SIGNING_SECRET": "whsec_c2VjcmV0LXRvby1zaG9ydA=="}, "WEBHOOK_SIGNING_SECRET"),
        ({"WEBHOOK_SIGNING_SECRET": "hunter2-not-whsec"}, "WEBHOOK_SIGNING_SECRET"),
    ],
)
def test_bad_values_stop_the_start_naming_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    assert str(caught.value).startswith(f"{variable}: ")
    assert "hunter2" not in str(caught.value) and "c2VjcmV0" not in str(caught.value)
