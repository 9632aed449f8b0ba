"""The `email` kind against a real SMTP server (aiosmtpd on 127.0.0.1, an ephemeral port): the
message that arrives, how SMTP replies and connection failures become outcomes, TLS; and the
email settings read from the environment."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from queue_system.config.settings import EmailSettings, SmtpServer, WorkerSettings, load_settings
from queue_system.domain.models import AttemptResult, Outcome
from queue_system.errors import ConfigError, InvalidInput
from queue_system.kinds import RunContext, TaskKind
from queue_system.kinds.email import email_kind
from tests.support.smtp import EphemeralController, Mailbox

# The kind under test, built from the settings each test gives `configure` (as load_kinds does).
KIND: TaskKind = email_kind(EmailSettings())


@pytest.fixture
def smtp_server() -> Iterator[Callable[..., str]]:
    """Starts servers on demand: start(handler, **smtp_kwargs) -> "127.0.0.1:<port>"."""
    controllers: list[Controller] = []

    def start(handler: Mailbox, **kwargs: Any) -> str:
        controller = EphemeralController(
            handler, hostname="127.0.0.1", port=0, server_hostname="mx.test", **kwargs
        )
        controller.start()
        controllers.append(controller)
        return f"127.0.0.1:{controller.port}"

    yield start
    for controller in controllers:
        controller.stop()


@pytest.fixture
def ctx() -> Iterator[RunContext]:
    with httpx.Client() as http:
        yield RunContext("task-42", 1, 30, http, WorkerSettings(), threading.Event())


@pytest.fixture(autouse=True)
def unconfigure() -> Iterator[None]:
    yield
    configure(None)  # no SMTP settings left behind for the next test


def configure(url: str | None, **kwargs: Any) -> None:
    global KIND
    KIND = email_kind(
        EmailSettings(smtp_url=url, email_from="Queue <queue@example.com>", **{"timeout_ms": 5_000, **kwargs})
    )


def send(payload: Any, ctx: RunContext) -> AttemptResult:
    """As the API then the worker do: validate (and store) at submit time, run the stored form."""
    stored = KIND.decode(payload)
    return KIND.run(stored, ctx)


FULL = {
    "to": ["ada@example.com", "Bob Smith <bob@example.com>"],
    "cc": "carol@example.com",
    "reply_to": "help@example.com",
    "subject": "Your report",
    "body": "Hello Ada,\nthe report is ready.\n",
    "html": "<p>Hello Ada,</p><p>the report is <b>ready</b>.</p>",
}


def test_sends_the_message_over_smtp(smtp_server: Callable[..., str], ctx: RunContext) -> None:
    box = Mailbox()
    configure(f"smtp://{smtp_server(box)}")
    result = send(FULL, ctx)
    assert result.outcome is Outcome.SUCCESS, result.error
    envelope = box.received[0]
    assert envelope.mail_from == "queue@example.com"
    assert envelope.rcpt_tos == ["ada@example.com", "bob@example.com", "carol@example.com"]
    message = box.message()
    assert message["From"] == "Queue <queue@example.com>"
    assert message["To"] == "ada@example.com, Bob Smith <bob@example.com>"
    assert message["Cc"] == "carol@example.com"
    assert message["Reply-To"] == "help@example.com"
    assert message["Subject"] == "Your report"
    assert message["Bcc"] is None
    assert message.get_content_type() == "multipart/alternative"
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None
    assert html is not None
    assert isinstance(plain, EmailMessage)
    assert isinstance(html, EmailMessage)
    assert plain.get_content() == FULL["body"]
    assert html.get_content().strip() == FULL["html"]
    assert result.result == {
        "message_id": message["Message-ID"],
        "accepted": ["ada@example.com", "bob@example.com", "carol@example.com"],
    }


def test_plain_text_without_html_is_a_single_part(smtp_server: Callable[..., str], ctx: RunContext) -> None:
    box = Mailbox()
    configure(f"smtp://{smtp_server(box)}")
    result = send({"to": "ada@example.com", "subject": "Hi", "body": "Grüße aus Köln"}, ctx)
    assert result.outcome is Outcome.SUCCESS, result.error
    message = box.message()
    assert message.get_content_type() == "text/plain"
    assert message.get_content().strip() == "Grüße aus Köln"
    assert message["Cc"] is None
    assert message["Reply-To"] is None


def test_every_attempt_sends_the_same_message_id(smtp_server: Callable[..., str], ctx: RunContext) -> None:
    box = Mailbox()
    configure(f"smtp://{smtp_server(box)}")
    payload = {"to": "ada@example.com", "subject": "Hi", "body": "Hello"}
    assert send(payload, ctx).outcome is Outcome.SUCCESS
    assert send(payload, ctx).outcome is Outcome.SUCCESS
    assert len(box.received) == 2
    assert box.message(0)["Message-ID"] == box.message(1)["Message-ID"]


def test_a_plain_string_goes_to_the_default_recipients(
    smtp_server: Callable[..., str], ctx: RunContext
) -> None:
    box = Mailbox()
    configure(f"smtp://{smtp_server(box)}", default_to=("ops@example.com", "dev@example.com"))
    stored = KIND.decode("Disk almost full\non db-1: 93% used")
    assert stored.to == ["ops@example.com", "dev@example.com"]  # resolved at submit time
    result = KIND.run(stored, ctx)
    assert result.outcome is Outcome.SUCCESS, result.error
    assert box.received[0].rcpt_tos == ["ops@example.com", "dev@example.com"]
    message = box.message()
    assert message["Subject"] == "Disk almost full"
    assert message.get_content() == "Disk almost full\non db-1: 93% used\n"


def test_a_plain_string_without_default_recipients_is_invalid_at_submit() -> None:
    configure("smtp://127.0.0.1:25")
    with pytest.raises(InvalidInput) as info:
        KIND.decode("Hello")
    assert info.value.field == "payload.to"
    assert "EMAIL_DEFAULT_TO" in info.value.message


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"to": "nobody", "subject": "s", "body": "b"}, "payload.to"),
        ({"to": ["a@example.com", "b"], "subject": "s", "body": "b"}, "payload.to[1]"),
        ({"to": [], "subject": "s", "body": "b"}, "payload.to"),
        ({"to": "a@example.com, b@example.com", "subject": "s", "body": "b"}, "payload.to"),
        ({"to": "a@example.com\r\nBcc: x@example.com", "subject": "s", "body": "b"}, "payload.to"),
        ({"to": "a@example.com", "cc": ["x\n@example.com"], "subject": "s", "body": "b"}, "payload.cc[0]"),
        ({"to": "a@example.com", "reply_to": "me", "subject": "s", "body": "b"}, "payload.reply_to"),
        ({"to": "a@example.com", "subject": "s\nBcc: x@example.com", "body": "b"}, "payload.subject"),
        ({"to": "a@example.com", "body": "b"}, "payload"),
        ({"to": "a@example.com", "subject": "s", "body": "b", "bcc": "x@example.com"}, "payload.bcc"),
        (42, "payload"),
    ],
)
def test_invalid_payloads_name_the_field(payload: Any, field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        KIND.decode(payload)
    assert info.value.field is not None
    assert info.value.field.startswith(field)
    assert str(info.value) == f"{info.value.field}: {info.value.message}"  # kept apart until rendered


def test_login_with_the_credentials_in_the_url(smtp_server: Callable[..., str], ctx: RunContext) -> None:
    logins: list[LoginPassword] = []

    def authenticator(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        logins.append(data)
        # handled=False: aiosmtpd answers a failure with its standard 535 reply.
        return AuthResult(success=data == LoginPassword(b"mailer", b"s3cret/:@"), handled=False)

    box = Mailbox()
    address = smtp_server(box, authenticator=authenticator, auth_require_tls=False)
    payload = {"to": "ada@example.com", "subject": "Hi", "body": "Hello"}

    configure(f"smtp://mailer:s3cret%2F%3A%40@{address}")
    assert send(payload, ctx).outcome is Outcome.SUCCESS
    assert logins[-1] == LoginPassword(b"mailer", b"s3cret/:@")
    assert len(box.received) == 1

    configure(f"smtp://mailer:wrong@{address}")
    result = send(payload, ctx)
    assert result.outcome is Outcome.PERMANENT  # 535: the credentials will not get better
    assert result.error is not None
    assert result.error.startswith(f"login refused by {address}: 535")


def test_starttls_the_server_does_not_offer_is_permanent(
    smtp_server: Callable[..., str], ctx: RunContext
) -> None:
    box = Mailbox()
    configure(f"smtp://{smtp_server(box)}?starttls=true")
    result = send({"to": "ada@example.com", "subject": "Hi", "body": "Hello"}, ctx)
    assert result.outcome is Outcome.PERMANENT
    assert result.error is not None
    assert "STARTTLS" in result.error
    assert box.received == []


@pytest.mark.parametrize(
    ("reply", "outcome"),
    [
        ("451 4.3.0 mailbox busy, try later", Outcome.TRANSIENT),
        ("554 5.7.1 rejected as spam", Outcome.PERMANENT),
    ],
)
def test_a_refusal_at_data_is_classified_by_its_code(
    smtp_server: Callable[..., str], ctx: RunContext, reply: str, outcome: Outcome
) -> None:
    configure(f"smtp://{smtp_server(Mailbox(data_reply=reply))}")
    result = send({"to": "ada@example.com", "subject": "Hi", "body": "Hello"}, ctx)
    assert result.outcome is outcome
    assert result.error is not None
    assert reply in result.error


@pytest.mark.parametrize(
    ("replies", "outcome"),
    [
        (["550 5.1.1 no such user", "550 5.1.1 no such user"], Outcome.PERMANENT),
        (["451 4.2.1 greylisted", "550 5.1.1 no such user"], Outcome.TRANSIENT),
    ],
)
def test_all_recipients_refused(
    smtp_server: Callable[..., str], ctx: RunContext, replies: list[str], outcome: Outcome
) -> None:
    box = Mailbox(refuse_rcpt={"ada@example.com": replies[0], "bob@example.com": replies[1]})
    configure(f"smtp://{smtp_server(box)}")
    result = send({"to": ["ada@example.com", "bob@example.com"], "subject": "Hi", "body": "Hello"}, ctx)
    assert result.outcome is outcome
    assert result.error is not None
    assert result.error.startswith("all recipients refused: ada@example.com: ")
    assert box.received == []


def test_some_recipients_refused_is_a_success_that_says_so(
    smtp_server: Callable[..., str], ctx: RunContext
) -> None:
    box = Mailbox(refuse_rcpt={"bob@example.com": "550 5.1.1 no such user"})
    configure(f"smtp://{smtp_server(box)}")
    result = send({"to": ["ada@example.com", "bob@example.com"], "subject": "Hi", "body": "Hello"}, ctx)
    assert result.outcome is Outcome.SUCCESS  # ada has it: a retry would send her a second copy
    assert result.result["accepted"] == ["ada@example.com"]
    assert result.result["refused"] == {"bob@example.com": "550 5.1.1 no such user"}
    assert box.received[0].rcpt_tos == ["ada@example.com"]


def test_a_closed_port_is_transient(ctx: RunContext) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago, with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    configure(f"smtp://127.0.0.1:{port}")
    result = send({"to": "ada@example.com", "subject": "Hi", "body": "Hello"}, ctx)
    assert result.outcome is Outcome.TRANSIENT
    assert result.error is not None
    assert result.error == f"connection refused by SMTP server 127.0.0.1:{port}"
    assert result.detail is not None and "ConnectionRefusedError" in result.detail  # the library's account


def test_a_server_that_never_greets_times_out_in_words(ctx: RunContext) -> None:
    with socket.socket() as silent:  # accepts the connection (backlog) and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        configure(f"smtp://127.0.0.1:{port}", timeout_ms=500)
        result = send({"to": "ada@example.com", "subject": "Hi", "body": "Hello"}, ctx)
    assert result.outcome is Outcome.TRANSIENT
    assert result.error == f"timed out after 500 ms talking to SMTP server 127.0.0.1:{port}"
    assert result.detail is not None


def test_a_server_that_hangs_up_says_so(ctx: RunContext) -> None:
    with socket.socket() as rude:
        rude.bind(("127.0.0.1", 0))
        rude.listen(1)
        port = rude.getsockname()[1]

        def hang_up() -> None:
            conn, _ = rude.accept()
            conn.close()

        closer = threading.Thread(target=hang_up, daemon=True)
        closer.start()
        configure(f"smtp://127.0.0.1:{port}")
        result = send({"to": "ada@example.com", "subject": "Hi", "body": "Hello"}, ctx)
        closer.join(timeout=10)
    assert result.outcome is Outcome.TRANSIENT
    assert result.error == f"SMTP server 127.0.0.1:{port} closed the connection"


def test_not_configured_fails_at_once(ctx: RunContext) -> None:
    configure(None)
    result = send({"to": "ada@example.com", "subject": "Hi", "body": "Hello"}, ctx)
    assert result.outcome is Outcome.PERMANENT
    assert result.error == "SMTP is not configured: set SMTP_URL"


# --- TLS: STARTTLS and smtps:// against a certificate made for the test -------------------------


@dataclass(frozen=True)
class Cert:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> Cert:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to make a certificate")
    folder = tmp_path_factory.mktemp("tls")
    made = Cert(folder / "cert.pem", folder / "key.pem")
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(made.key),
            "-out",
            str(made.cert),
        ],
        check=True,
        capture_output=True,
    )
    return made


def test_starttls_when_asked(
    smtp_server: Callable[..., str], ctx: RunContext, cert: Cert, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(cert.cert))  # trust our certificate, as a CA bundle would
    box = Mailbox()
    address = smtp_server(box, tls_context=cert.server_context(), require_starttls=True)
    configure(f"smtp://{address}?starttls=true")
    result = send({"to": "ada@example.com", "subject": "Hi", "body": "Hello"}, ctx)
    assert result.outcome is Outcome.SUCCESS, result.error
    assert box.message()["Subject"] == "Hi"


def test_smtps(
    smtp_server: Callable[..., str], ctx: RunContext, cert: Cert, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(cert.cert))
    box = Mailbox()
    configure(f"smtps://{smtp_server(box, ssl_context=cert.server_context())}")
    result = send({"to": "ada@example.com", "subject": "Hi", "body": "Hello"}, ctx)
    assert result.outcome is Outcome.SUCCESS, result.error
    assert len(box.received) == 1


def test_an_untrusted_certificate_is_permanent(
    smtp_server: Callable[..., str], ctx: RunContext, cert: Cert
) -> None:
    box = Mailbox()
    configure(f"smtp://{smtp_server(box, tls_context=cert.server_context())}?starttls=true")
    result = send({"to": "ada@example.com", "subject": "Hi", "body": "Hello"}, ctx)
    assert result.outcome is Outcome.PERMANENT
    assert result.error is not None
    assert "not trusted" in result.error
    assert box.received == []


# --- settings: SMTP_URL, EMAIL_FROM, EMAIL_DEFAULT_TO, SMTP_TIMEOUT -------------------------------


def test_email_settings_from_the_environment() -> None:
    email_settings = load_settings(
        {
            "SMTP_URL": "smtp://user%40corp:p%3Ass@mail.example.com:587?starttls=true",
            "EMAIL_FROM": "Alerts <alerts@example.com>",
            "EMAIL_DEFAULT_TO": "ops@example.com, dev@example.com",
            "SMTP_TIMEOUT": "10s",
        }
    ).email
    assert email_settings.email_from == "Alerts <alerts@example.com>"
    assert email_settings.default_to == ("ops@example.com", "dev@example.com")
    assert email_settings.timeout_ms == 10_000
    assert email_settings.smtp == SmtpServer("mail.example.com", 587, False, True, "user@corp", "p:ss")
    assert "p:ss" not in repr(email_settings) + repr(email_settings.smtp)


def test_email_settings_defaults() -> None:
    email_settings = load_settings({}).email
    assert email_settings == EmailSettings()
    assert email_settings.smtp is None
    assert email_settings.email_from == "queue_system@localhost"
    assert load_settings({"SMTP_URL": "smtps://mail.example.com"}).email.smtp == SmtpServer(
        "mail.example.com", 465, ssl=True
    )
    assert load_settings({"SMTP_URL": "smtp://localhost"}).email.smtp == SmtpServer("localhost", 25)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"SMTP_URL": "http://user:hunter2@mail.example.com"}, "SMTP_URL"),
        ({"SMTP_URL": "smtp://"}, "SMTP_URL"),
        ({"SMTP_URL": "smtp://mail.example.com:port"}, "SMTP_URL"),
        ({"SMTP_URL": "smtp://mail.example.com?starttls=maybe"}, "SMTP_URL"),
        ({"SMTP_URL": "smtp://mail.example.com?tls=true"}, "SMTP_URL"),
        ({"SMTP_URL": "smtps://mail.example.com?starttls=true"}, "SMTP_URL"),
        ({"EMAIL_FROM": "alerts"}, "EMAIL_FROM"),
        ({"EMAIL_DEFAULT_TO": "ops@example.com, dev"}, "EMAIL_DEFAULT_TO"),
        ({"SMTP_TIMEOUT": "soon"}, "SMTP_TIMEOUT"),
    ],
)
def test_bad_email_settings_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    assert info.value.variable == variable
    assert "hunter2" not in str(info.value)
