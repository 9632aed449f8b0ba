"""The one redaction rule (domain/redaction.py), as properties over every input it covers: any
header name containing a secret word (any case, any position), any credential-looking value under
any name, secret-looking URL parameters and userinfo, URLs and credentials inside error text."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from queue_system.domain.models import Attempt, Outcome, Task, TaskStatus
from queue_system.domain.redaction import (
    REDACTED,
    redact_headers,
    redact_text,
    redact_url,
    shown_payload,
    shown_task,
)
from tests.support.redaction import (
    credential_values,
    secret_names,
    secret_params,
    secrets_,
)


@given(secret_names, st.text(max_size=30))
def test_any_header_name_containing_a_word_is_redacted(name: str, value: str) -> None:
    assert redact_headers({name: value, "X-Plain": "visible"}) == {name: REDACTED, "X-Plain": "visible"}


@given(
    st.text(string.ascii_uppercase + "-", min_size=1, max_size=10).map(lambda s: "X-N" + s), credential_values
)
def test_any_credential_looking_value_is_redacted_whatever_the_name(name: str, value: str) -> None:
    assert redact_headers({name: value})[name] == REDACTED


@given(secret_params, secrets_, st.booleans())
def test_secret_url_parameters_are_redacted_the_rest_kept(param: str, secret: str, fragment: bool) -> None:
    url = f"https://hooks.example.com/a/b?page=2&{param}={secret}&x=1" + ("#f=1" if fragment else "")
    shown = redact_url(url)
    assert secret not in shown
    assert shown.startswith("https://hooks.example.com/a/b?page=2&") and f"{param}={REDACTED}&x=1" in shown


@given(secrets_)
def test_userinfo_password_and_credentials_in_text(secret: str) -> None:
    password = secret.replace("/", "%2F")  # RFC 3986: a raw "/" would end the authority
    assert redact_url(f"http://user:{password}@h.example/p") == f"http://user:{REDACTED}@h.example/p"
    assert redact_url(f"https://{password}@h.example/p") == f"https://{REDACTED}@h.example/p"
    text = f"TooManyRedirects: http://h.example/next?access_token={secret} then Bearer {secret}"
    shown = redact_text(text)
    assert secret not in shown and shown.startswith("TooManyRedirects: http://h.example/next?access_token=")


@pytest.mark.parametrize(
    "url",
    ["https://example.com/hook", "https://example.com/h?page=2&id=7", "http://127.0.0.1:9000/hook#top"],
)
def test_urls_without_secrets_are_unchanged(url: str) -> None:
    assert redact_url(url) == url


@given(secret_names, credential_values, secrets_)
def test_shown_task_covers_payload_result_and_errors(name: str, value: str, secret: str) -> None:
    payload = {
        "url": f"https://h.example/x?sig={secret}",
        "headers": {name: secret, "X-Other": value},
        "signing_secret": "whsec_" + secret,
    }
    error = f"invalid URL: https://h.example/y?token={secret}"
    attempt = Attempt(n=1, started_at=0, duration_ms=1, outcome=Outcome.PERMANENT, error=error)
    task = Task(
        id="t", type="webhook", payload=payload, status=TaskStatus.FAILED, queue="default", attempts=1,
        created_at=0, updated_at=0, last_error=error, history=[attempt],
    )  # fmt: skip
    shown = shown_task(task)
    assert secret not in repr(shown) and value not in repr(shown)
    assert task.payload is payload and payload["headers"][name] == secret  # the stored task is untouched
    assert shown_payload("plain") == "plain"


def test_the_worker_log_line_of_a_failed_attempt_is_redacted() -> None:
    from loguru import logger

    from queue_system.domain.models import AttemptResult
    from queue_system.domain.retry import Decision
    from queue_system.service.runner import TaskRunner

    task = Task(
        id="t", type="webhook", payload={}, status=TaskStatus.PROCESSING, queue="default", attempts=1,
        created_at=0, updated_at=0,
    )  # fmt: skip
    error = "TooManyRedirects: https://h.example/next?access_token=Zq9secretvalue then Bearer Zq9secretvalue"
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="DEBUG")
    try:
        TaskRunner._log(
            task, AttemptResult(Outcome.PERMANENT, error=error), Decision(TaskStatus.FAILED), 3, True
        )
    finally:
        logger.remove(sink)
    assert lines and "Zq9secretvalue" not in "".join(lines) and "access_token=[redacted]" in "".join(lines)
