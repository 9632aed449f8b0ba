"""The CLI is a reader too: `queue-system tasks submit/show/list` against a real API process print
what the redaction rule leaves (issue 17, point 7), the secrets the webhook will still send never."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import support
from tests.support.cli import invoke

pytestmark = pytest.mark.e2e

KEY = "e2e-cli-key-0123456789"
READ_KEY = "e2e-cli-read-key-0123456789"
SECRET = "Zq9cli-signature-value"


@pytest.fixture(scope="module")
def api_url(redis_url: str, e2e_logs: Path) -> Iterator[str]:
    keys = {"API_KEYS": KEY, "API_READ_KEYS": READ_KEY}
    with support.api_only(redis_url, e2e_logs, "api-cli-redaction", **keys) as url:
        yield url


def test_the_cli_never_prints_a_secret(api_url: str, redis_client: object) -> None:
    submitted = invoke(
        "tasks", "submit", "--webhook", f"http://127.0.0.1:9/hook?sig={SECRET}&page=2",
        "--header", f"X-Hub-Signature-256: sha256={SECRET}", "--header", f"X-Custom: Bearer {SECRET}",
        "--header", "X-Plain: visible", "--id", "cli-secret", "--json", "--url", api_url,
        env={"QUEUE_SYSTEM_API_KEY": KEY},
    )  # fmt: skip
    assert submitted.exit_code == 0, submitted.output
    for args in (
        ("tasks", "show", "cli-secret"),
        ("tasks", "list"),
        ("tasks", "show", "cli-secret", "--json"),
    ):
        result = invoke(*args, "--url", api_url, env={"QUEUE_SYSTEM_API_KEY": READ_KEY})
        assert result.exit_code == 0, result.output
        assert SECRET not in result.output, args
    shown = invoke("tasks", "show", "cli-secret", "--url", api_url, env={"QUEUE_SYSTEM_API_KEY": READ_KEY})
    assert "visible" in shown.output and "sig=[redacted]&page=2" in shown.output
    assert SECRET not in submitted.output
