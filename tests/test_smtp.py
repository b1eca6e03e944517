"""SmtpTransport against a real SMTP server (aiosmtpd) on 127.0.0.1, on a free port.

Plain, STARTTLS and implicit TLS (a self-signed certificate made for the test session),
with and without AUTH. The server's handler decides per recipient and per DATA what to
answer, so refusals and temporary failures are the server's real SMTP replies.
"""

from __future__ import annotations

import datetime as dt
import email
import ipaddress
import socket
import ssl
import threading
import traceback
from collections.abc import Callable, Iterator
from email import policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword

from hytetu.errors import DeliveryError
from hytetu.mail import Attachment, Receipt, SmtpSettings, SmtpTransport, build_message

# AUTH without TLS is what these tests do on purpose, on loopback
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

SENDER = "hyte@hyvaks.example"
PASSWORD = "Sal@sana-ÄÖ-7x!q"  # noqa: S105 - a test secret, set through the environment
PASSWORD_ENV = "HYTETU_TEST_SMTP_PASSWORD"
SUBJECT = "Muistio: Jämsä, Keuruu, Multia ja Petäjävesi – hyte-neuvottelu 2025"


# --- the server ------------------------------------------------------------------------


class Handler:
    """Records what is delivered; answers as told per recipient, for DATA and for QUIT."""

    def __init__(
        self,
        rcpt: dict[str, str] | None = None,
        data: str | None = None,
        quit: str | None = None,
    ) -> None:
        self.rcpt = rcpt or {}
        self.data = data
        self.quit = quit
        self.delivered: list[Envelope] = []
        self.sessions = 0

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        self.sessions += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.rcpt:
            return self.rcpt[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
        if self.data:
            return self.data
        self.delivered.append(envelope)
        return "250 2.0.0 Message accepted for delivery"

    async def handle_QUIT(self, server: Any, session: Any, envelope: Envelope) -> str:
        return self.quit or "221 Bye"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def serve() -> Iterator[Callable[..., int]]:
    """Start an aiosmtpd server with a handler and SMTP options; returns its port."""
    controllers: list[Controller] = []

    def start(handler: Handler, **options: Any) -> int:
        port = _free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port, **options)
        controller.start()
        controllers.append(controller)
        return port

    yield start
    for controller in controllers:
        controller.stop()


def authenticator(
    logins: list[tuple[str, str]], expected: str = PASSWORD
) -> Callable[..., AuthResult]:
    def check(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        login, password = data.login.decode(), data.password.decode()
        logins.append((mechanism, login))
        if (login, password) == ("hyte", expected):
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    return check


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost: (cert.pem, key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hytetu test smtp")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


def client_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate[0]))


# --- the message ------------------------------------------------------------------------


def raw_message(to: list[str]) -> bytes:
    msg = build_message(
        sender=("Keski-Suomen hyvinvointialue", SENDER),
        to=[(f"Vastaanottaja {i}", address) for i, address in enumerate(to)],
        subject=SUBJECT,
        # a line that is a single dot would end DATA if the client did not dot-stuff it
        text="Hei,\n\nmuistio liitteenä. Ääkköset: äöå.\n.\n..\n.piste alussa\n",
        message_id="<0123456789abcdef.hytetu@hyvaks.example>",
        date=dt.datetime(2025, 11, 20, 9, 0, tzinfo=dt.UTC),
        purpose="registry_letter",
        attachments=[Attachment("muistio.pdf", b"%PDF-1.7\r\n.\r\n\x00\xff" * 50)],
    )
    return msg.as_bytes()


def transport(port: int, **settings: Any) -> SmtpTransport:
    context = settings.pop("ssl_context", None)
    values: dict[str, Any] = {"host": "127.0.0.1", "port": port, "security": "none"}
    values.update(timeout=5.0, password_env=PASSWORD_ENV)
    values.update(settings)
    return SmtpTransport(SmtpSettings(**values), ssl_context=context)


def error_text(error: BaseException) -> str:
    """Everything an operator could see of an error: message, repr, traceback, causes."""
    parts = [str(error), repr(error), "".join(traceback.format_exception(error))]
    for linked in (error.__cause__, error.__context__):
        if linked is not None:
            parts += [str(linked), repr(linked)]
    return "\n".join(parts + [str(getattr(error, "recipient", ""))])


# --- delivery -----------------------------------------------------------------------


def test_delivers_the_exact_bytes(serve: Callable[..., int]) -> None:
    handler = Handler()
    port = serve(handler)
    to = ["orjan@jamsa.example", "kirjaamo@keuruu.example"]
    raw = raw_message(to)

    receipt = transport(port).send(raw, SENDER, to)

    assert isinstance(receipt, Receipt) and receipt.transport == "smtp"
    (envelope,) = handler.delivered
    assert envelope.mail_from == SENDER
    assert envelope.rcpt_tos == to
    assert envelope.original_content == raw  # dot-stuffing undone, nothing rewritten
    received = email.message_from_bytes(envelope.original_content, policy=policy.default)
    assert received["Message-ID"] == "<0123456789abcdef.hytetu@hyvaks.example>"
    assert received["Subject"] == SUBJECT
    (pdf,) = received.iter_attachments()
    assert pdf.get_content() == b"%PDF-1.7\r\n.\r\n\x00\xff" * 50


def test_messages_are_7bit_and_go_without_8bitmime(serve: Callable[..., int]) -> None:
    """hytetu's messages need no 8BITMIME (RFC 6152): every relay takes them."""
    handler = Handler()
    port = serve(handler)
    raw = raw_message(["orjan@jamsa.example"])
    assert raw.isascii()
    transport(port).send(raw, SENDER, ["orjan@jamsa.example"])
    (envelope,) = handler.delivered
    assert "BODY=8BITMIME" not in [o.upper() for o in envelope.mail_options]


def test_8bit_message_is_announced_with_body_8bitmime(serve: Callable[..., int]) -> None:
    """RFC 6152: 8-bit data only after MAIL FROM ... BODY=8BITMIME (a message queued by an
    earlier version, which sent UTF-8 text parts 8bit, is sent as it was stored)."""
    handler = Handler()
    port = serve(handler)
    raw = (
        b"From: hyte@hyvaks.example\r\nTo: orjan@jamsa.example\r\nSubject: x\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n" + "Ääkköset: äöå.\r\n".encode()
    )
    transport(port).send(raw, SENDER, ["orjan@jamsa.example"])
    (envelope,) = handler.delivered
    assert "BODY=8BITMIME" in [o.upper() for o in envelope.mail_options]


def test_error_reply_to_quit_after_acceptance_is_still_a_delivery(
    serve: Callable[..., int],
) -> None:
    """Once DATA is answered 250 the message is the server's: re-sending would duplicate."""
    handler = Handler(quit="421 4.3.0 closing anyway")
    port = serve(handler)
    receipt = transport(port).send(
        raw_message(["orjan@jamsa.example"]), SENDER, ["orjan@jamsa.example"]
    )
    assert receipt.transport == "smtp"
    assert len(handler.delivered) == 1


# --- refusals --------------------------------------------------------------------------


def test_recipient_refused_with_550_is_permanent_and_named(serve: Callable[..., int]) -> None:
    handler = Handler(rcpt={"poistunut@jamsa.example": "550 5.1.1 User unknown"})
    port = serve(handler)
    with pytest.raises(DeliveryError) as info:
        transport(port).send(
            raw_message(["poistunut@jamsa.example"]), SENDER, ["poistunut@jamsa.example"]
        )
    assert info.value.permanent is True
    assert info.value.recipient == "poistunut@jamsa.example"
    assert "poistunut@jamsa.example" in str(info.value)
    assert "550" in str(info.value)
    assert handler.delivered == []


def test_one_of_two_recipients_refused_is_permanent_and_names_only_that_one(
    serve: Callable[..., int],
) -> None:
    handler = Handler(rcpt={"poistunut@jamsa.example": "550 5.1.1 User unknown"})
    port = serve(handler)
    to = ["orjan@jamsa.example", "poistunut@jamsa.example"]
    with pytest.raises(DeliveryError) as info:
        transport(port).send(raw_message(to), SENDER, to)
    assert info.value.permanent is True
    assert info.value.recipient == "poistunut@jamsa.example"
    assert "poistunut@jamsa.example" in str(info.value) and "550" in str(info.value)
    assert "orjan@jamsa.example" not in str(info.value)
    # the server took it for the other recipient: a retry would send it to them again
    assert [e.rcpt_tos for e in handler.delivered] == [["orjan@jamsa.example"]]


def test_recipient_answered_451_is_temporary(serve: Callable[..., int]) -> None:
    handler = Handler(rcpt={"orjan@jamsa.example": "451 4.7.1 Greylisted, try again later"})
    port = serve(handler)
    with pytest.raises(DeliveryError) as info:
        transport(port).send(raw_message(["orjan@jamsa.example"]), SENDER, ["orjan@jamsa.example"])
    assert info.value.permanent is False
    assert info.value.recipient == "orjan@jamsa.example"
    assert "451" in str(info.value)


def test_all_refused_with_a_mix_of_451_and_550_is_temporary(serve: Callable[..., int]) -> None:
    """Nobody got it, and one refusal may pass later: retrying duplicates nothing."""
    handler = Handler(
        rcpt={
            "poistunut@jamsa.example": "550 5.1.1 User unknown",
            "orjan@jamsa.example": "451 4.7.1 Greylisted",
        }
    )
    port = serve(handler)
    to = ["poistunut@jamsa.example", "orjan@jamsa.example"]
    with pytest.raises(DeliveryError) as info:
        transport(port).send(raw_message(to), SENDER, to)
    assert info.value.permanent is False
    assert "poistunut@jamsa.example" in str(info.value) and "550" in str(info.value)
    assert "orjan@jamsa.example" in str(info.value) and "451" in str(info.value)


@pytest.mark.parametrize(
    ("reply", "permanent"),
    [
        ("451 4.3.0 Mail server temporarily rejected message", False),
        ("452 4.3.1 Insufficient system storage", False),
        ("554 5.6.0 Message content rejected", True),
    ],
)
def test_data_answer_decides_permanence(
    serve: Callable[..., int], reply: str, permanent: bool
) -> None:
    port = serve(Handler(data=reply))
    with pytest.raises(DeliveryError) as info:
        transport(port).send(raw_message(["orjan@jamsa.example"]), SENDER, ["orjan@jamsa.example"])
    assert info.value.permanent is permanent
    assert reply.split()[0] in str(info.value)


# --- connections ---------------------------------------------------------------------


def test_connection_refused_is_a_clear_temporary_error() -> None:
    port = _free_port()  # nothing listens there
    with pytest.raises(DeliveryError) as info:
        transport(port).send(raw_message(["orjan@jamsa.example"]), SENDER, ["orjan@jamsa.example"])
    assert info.value.permanent is False
    text = str(info.value)
    assert f"127.0.0.1:{port}" in text
    assert "refused" in text.lower()


def test_a_server_that_never_greets_times_out_as_a_temporary_error() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()  # the kernel accepts the connection; nobody ever speaks
        port = listener.getsockname()[1]
        with pytest.raises(DeliveryError) as info:
            transport(port, timeout=0.5).send(
                raw_message(["orjan@jamsa.example"]), SENDER, ["orjan@jamsa.example"]
            )
    assert info.value.permanent is False
    assert "timed out" in str(info.value).lower() or "timeout" in str(info.value).lower()


# --- AUTH ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "offered", "mechanism"),
    [
        ("ascii-Only-7x!q", ["PLAIN", "LOGIN"], "PLAIN"),  # smtplib's own login
        (PASSWORD, ["PLAIN", "LOGIN"], "PLAIN"),  # UTF-8, RFC 4616
        (PASSWORD, ["LOGIN"], "LOGIN"),  # UTF-8 where only LOGIN is offered
    ],
)
def test_auth_with_the_password_from_the_environment(
    serve: Callable[..., int],
    monkeypatch: pytest.MonkeyPatch,
    password: str,
    offered: list[str],
    mechanism: str,
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, password)
    logins: list[tuple[str, str]] = []
    handler = Handler()
    port = serve(
        handler,
        authenticator=authenticator(logins, expected=password),
        auth_required=True,
        auth_require_tls=False,
        auth_exclude_mechanism=[m for m in ("PLAIN", "LOGIN") if m not in offered],
    )
    transport(port, username="hyte").send(
        raw_message(["orjan@jamsa.example"]), SENDER, ["orjan@jamsa.example"]
    )
    assert logins == [(mechanism, "hyte")]
    assert len(handler.delivered) == 1


def test_wrong_password_is_permanent_and_never_shown(
    serve: Callable[..., int], monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "Väärä-salasana-123"
    monkeypatch.setenv(PASSWORD_ENV, wrong)
    logins: list[tuple[str, str]] = []
    handler = Handler()
    port = serve(
        handler,
        authenticator=authenticator(logins),
        auth_required=True,
        auth_require_tls=False,
    )
    with pytest.raises(DeliveryError) as info:
        transport(port, username="hyte").send(
            raw_message(["orjan@jamsa.example"]), SENDER, ["orjan@jamsa.example"]
        )
    assert logins, "the client did try to log in"
    assert info.value.permanent is True
    assert "535" in str(info.value)
    assert wrong not in error_text(info.value)
    assert handler.delivered == []


def test_a_server_echoing_the_password_does_not_leak_it(
    serve: Callable[..., int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Some servers quote what they got; the error text must not carry the secret."""
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)

    def echo(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        message = f"535 5.7.8 rejected {data.login.decode()}:{data.password.decode()}"
        return AuthResult(success=False, handled=False, message=message)

    port = serve(Handler(), authenticator=echo, auth_required=True, auth_require_tls=False)
    with pytest.raises(DeliveryError) as info:
        transport(port, username="hyte").send(
            raw_message(["orjan@jamsa.example"]), SENDER, ["orjan@jamsa.example"]
        )
    assert info.value.permanent is True
    assert PASSWORD not in error_text(info.value)


@pytest.mark.parametrize("value", [None, ""])
def test_username_without_a_password_is_a_permanent_configuration_error(
    serve: Callable[..., int], monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv(PASSWORD_ENV, raising=False)
    else:
        monkeypatch.setenv(PASSWORD_ENV, value)
    handler = Handler()
    port = serve(handler, authenticator=authenticator([]), auth_require_tls=False)
    with pytest.raises(DeliveryError) as info:
        transport(port, username="hyte").send(
            raw_message(["orjan@jamsa.example"]), SENDER, ["orjan@jamsa.example"]
        )
    assert info.value.permanent is True
    assert PASSWORD_ENV in str(info.value)
    assert handler.delivered == []


# --- TLS -----------------------------------------------------------------------------


def test_starttls_with_auth(
    serve: Callable[..., int],
    monkeypatch: pytest.MonkeyPatch,
    certificate: tuple[Path, Path],
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    logins: list[tuple[str, str]] = []
    handler = Handler()
    port = serve(
        handler,
        tls_context=server_tls(certificate),
        require_starttls=True,
        authenticator=authenticator(logins),
        auth_required=True,  # and AUTH only over TLS, aiosmtpd's default
    )
    raw = raw_message(["orjan@jamsa.example"])
    transport(port, security="starttls", username="hyte", ssl_context=client_tls(certificate)).send(
        raw, SENDER, ["orjan@jamsa.example"]
    )
    assert logins == [("PLAIN", "hyte")]
    (envelope,) = handler.delivered
    assert envelope.original_content == raw


def test_starttls_to_an_untrusted_certificate_fails_without_sending(
    serve: Callable[..., int], certificate: tuple[Path, Path]
) -> None:
    handler = Handler()
    port = serve(handler, tls_context=server_tls(certificate), require_starttls=True)
    with pytest.raises(DeliveryError) as info:
        transport(port, security="starttls").send(  # the system's CAs: not ours
            raw_message(["orjan@jamsa.example"]), SENDER, ["orjan@jamsa.example"]
        )
    assert "certificate" in str(info.value).lower()
    assert handler.delivered == []


def test_implicit_tls(serve: Callable[..., int], certificate: tuple[Path, Path]) -> None:
    handler = Handler()
    port = serve(handler, ssl_context=server_tls(certificate))
    raw = raw_message(["orjan@jamsa.example"])
    transport(port, security="tls", ssl_context=client_tls(certificate)).send(
        raw, SENDER, ["orjan@jamsa.example"]
    )
    (envelope,) = handler.delivered
    assert envelope.original_content == raw


def test_plain_client_is_refused_by_a_server_requiring_starttls(
    serve: Callable[..., int], certificate: tuple[Path, Path]
) -> None:
    handler = Handler()
    port = serve(handler, tls_context=server_tls(certificate), require_starttls=True)
    with pytest.raises(DeliveryError) as info:
        transport(port, security="none").send(
            raw_message(["orjan@jamsa.example"]), SENDER, ["orjan@jamsa.example"]
        )
    assert "530" in str(info.value)
    assert handler.delivered == []


def test_concurrent_sends_each_use_their_own_connection(serve: Callable[..., int]) -> None:
    handler = Handler()
    port = serve(handler)
    smtp = transport(port)
    errors: list[BaseException] = []

    def send(i: int) -> None:
        try:
            smtp.send(raw_message([f"r{i}@jamsa.example"]), SENDER, [f"r{i}@jamsa.example"])
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(e.rcpt_tos[0] for e in handler.delivered) == sorted(
        f"r{i}@jamsa.example" for i in range(8)
    )
