"""The development mailbox: the SMTP sink keeps what it receives in Redis (bounded), the email kind
names its task, `make run` starts the sink only in development without SMTP_URL, the dashboard
shows the messages."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from typing import Any

import redis
from litestar.testing import TestClient

from queue_system.api.app import create_app
from queue_system.config.settings import load_settings
from queue_system.kinds.email import Email, build_message
from queue_system.local.launcher import start_mailbox
from queue_system.local.mailbox import DEV_RECIPIENT, TASK_HEADER, DevMailbox
from queue_system.storage import mailbox
from queue_system.testing import poll


def test_the_sink_keeps_messages_and_the_dashboard_shows_them(
    redis_client: redis.Redis, redis_url: str
) -> None:
    sink = DevMailbox(redis_url)
    url = sink.start()
    try:
        assert url.startswith("smtp://127.0.0.1:")
        message = build_message(
            Email(to="dev@localhost", subject="Hello <there>", body="first line\nsecond"),
            "app@example.test",
            "t-1",
        )
        assert message[TASK_HEADER] == "t-1"
        with smtplib.SMTP("127.0.0.1", sink.port, timeout=10) as smtp:
            smtp.send_message(message)
        assert poll(lambda: redis_client.llen("qs:mailbox") == 1, 10)
    finally:
        sink.stop()
    assert 0 < int(redis_client.ttl("qs:mailbox")) <= mailbox.MAILBOX_TTL_S  # type: ignore[arg-type]
    with TestClient(create_app(load_settings({"REDIS_URL": redis_url}))) as client:
        page = client.get("/dashboard/mailbox").text
    assert "Hello &lt;there&gt;" in page and "second" in page
    assert "app@example.test" in page and "/dashboard/tasks/t-1" in page


def test_the_mailbox_is_capped(redis_client: redis.Redis) -> None:
    for n in range(mailbox.MAILBOX_CAP + 15):
        message = mailbox.MailboxMessage(received_at=n, mail_from="a@b", to=["c@d"], subject=f"m{n}", body="")
        mailbox.store(redis_client, "qs", message)
    assert redis_client.llen("qs:mailbox") == mailbox.MAILBOX_CAP
    newest: Any = redis_client.lindex("qs:mailbox", 0)
    assert f'"m{mailbox.MAILBOX_CAP + 14}"' in newest


def test_run_starts_the_sink_only_in_development_without_smtp(
    redis_client: redis.Redis, redis_url: str
) -> None:
    production = load_settings({"REDIS_URL": redis_url, "ENV": "production", "API_AUTH": "disabled"})
    assert start_mailbox(production, redis_url, {}) is None
    configured = load_settings({"REDIS_URL": redis_url, "SMTP_URL": "smtp://127.0.0.1:2525"})
    assert start_mailbox(configured, redis_url, {}) is None
    env: dict[str, str] = {}
    sink = start_mailbox(load_settings({"REDIS_URL": redis_url}), redis_url, env)
    assert sink is not None
    try:
        assert env["SMTP_URL"] == sink.url and env["EMAIL_DEFAULT_TO"] == DEV_RECIPIENT
        plain = EmailMessage()
        plain["From"], plain["To"], plain["Subject"] = "x@y", DEV_RECIPIENT, "plain"
        plain.set_content("hello")
        with smtplib.SMTP("127.0.0.1", sink.port, timeout=10) as smtp:
            smtp.send_message(plain)
        assert poll(lambda: redis_client.llen("qs:mailbox") == 1, 10)
    finally:
        sink.stop()
