"""E-mail messages and the transports that send them.

Every transport has one method, ``send(raw, sender, recipients) -> Receipt``, and sends the
exact bytes it is given, so the Message-ID, calendar part and attachments are the same
whatever the channel. The file outbox is the default and the dry run.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import os
import re
import smtplib
import ssl
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hytetu.errors import DeliveryError
from hytetu.safe import one_line
from hytetu.transport_settings import EwsSettings, GraphSettings


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    mimetype: str = "application/pdf"


@dataclass(frozen=True)
class Receipt:
    transport: str
    detail: str


def message_id_for(dedupe_key: str, sender_email: str) -> str:
    """Deterministic: the same logical message always has the same Message-ID."""
    digest = hashlib.sha256(dedupe_key.encode()).hexdigest()[:32]
    return f"<{digest}.hytetu@{sender_email.rsplit('@', 1)[-1]}>"


def _one_line(value: str) -> str:
    """Header values must not carry line breaks (header injection): CR, LF and every other
    break ``str.splitlines`` knows (VT, FF, NEL, U+2028...), which the email package would
    refuse with a ValueError; other control characters are dropped."""
    return one_line(value).strip()


def _address(name: str, email: str) -> Address:
    username, domain = email.rsplit("@", 1)
    return Address(display_name=_one_line(name), username=username, domain=domain)


def _set_subject(msg: EmailMessage, subject: str) -> None:
    """The Subject, folded so that no space is lost: the email package's own folding drops
    the space between an encoded word and the next ("30.11.2026– Förhandlingar"), so a
    non-ASCII subject is encoded whole (email.header) and stored as it is."""
    if subject.isascii():
        msg["Subject"] = subject
    else:
        msg.set_raw("Subject", Header(subject, "utf-8", header_name="Subject").encode())


def build_message(
    *,
    sender: tuple[str, str],
    to: list[tuple[str, str]],
    subject: str,
    text: str,
    message_id: str,
    date: datetime,
    html: str | None = None,
    cc: list[tuple[str, str]] | None = None,
    calendar: bytes | None = None,
    calendar_method: str = "REQUEST",
    attachments: list[Attachment] | None = None,
    language: str = "fi",
) -> EmailMessage:
    """A MIME message: text (+ html, + text/calendar) alternatives, then attachments."""
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = _address(*sender)
    msg["To"] = [_address(*r) for r in to]
    if cc:
        msg["Cc"] = [_address(*r) for r in cc]
    _set_subject(msg, _one_line(subject))
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = message_id
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    if calendar is not None:
        ics = calendar.decode("utf-8")
        msg.add_alternative(ics, subtype="calendar", params={"method": calendar_method})
        msg.add_attachment(
            ics,
            subtype="calendar",
            filename="kutsu.ics" if language == "fi" else "inbjudan.ics",
            params={"method": calendar_method},
        )
    for a in attachments or []:
        maintype, subtype = a.mimetype.split("/", 1)
        msg.add_attachment(a.content, maintype=maintype, subtype=subtype, filename=a.filename)
    # last: set_content() drops every Content-* header and add_* moves them into a part
    msg["Content-Language"] = language
    return msg


def slug(text: str, max_length: int = 60) -> str:
    """ascii-safe file name part: 'Jämsä, Keuruu' -> 'jamsa-keuruu'."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:max_length] or "x"


class Transport(Protocol):
    """What every transport does. ``was_sent`` serves crash recovery: True or False when
    the transport can tell whether a message with that Message-ID already went out (EWS and
    Graph search Sent Items), None when it cannot (SMTP: resend with the same Message-ID so
    the receiver can drop the duplicate)."""

    name: str

    def send(self, raw: bytes, sender: str, recipients: list[str]) -> Receipt: ...

    def was_sent(self, message_id: str, sender: str) -> bool | None: ...


class FileOutbox:
    """Writes each message as an .eml file; nothing leaves the machine."""

    name = "file"

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def was_sent(self, message_id: str, sender: str) -> bool | None:
        return None

    def send(self, raw: bytes, sender: str, recipients: list[str]) -> Receipt:
        digest = hashlib.sha256(raw).hexdigest()[:10]
        path = self.folder / f"{slug(recipients[0], 40)}-{digest}.eml"
        tmp = path.with_suffix(".tmp")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(raw)
            tmp.replace(path)
        except OSError as e:  # not written, so not sent: worth another try
            raise DeliveryError(
                f"cannot write {path}: {e}", recipient=", ".join(recipients)
            ) from None
        return Receipt(self.name, str(path))


class SmtpSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str
    port: int = 587
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password_env: str = Field(
        "HYTETU_SMTP_PASSWORD", description="Environment variable holding the password"
    )
    timeout: float = 30.0

    @model_validator(mode="after")
    def _no_password_in_clear(self) -> SmtpSettings:
        """AUTH on a plain connection sends the password readable to anyone on the way:
        only to this machine (a local relay, the tests)."""
        if self.username and self.security == "none" and not _loopback(self.host):
            raise ValueError(
                "security none with a username would send the password unencrypted over "
                "the network; use starttls or tls (none is for a trusted relay without AUTH)"
            )
        return self


def _loopback(host: str) -> bool:
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class SmtpTransport:
    """SMTP submission (STARTTLS, implicit TLS or plain on a trusted relay), with AUTH.

    Errors are DeliveryErrors: ``permanent`` when a retry cannot help (5xx, a refused
    recipient after others got the message, bad credentials), temporary otherwise. Their
    text never holds the password.
    """

    name = "smtp"

    def __init__(self, settings: SmtpSettings, ssl_context: ssl.SSLContext | None = None) -> None:
        self.settings = settings
        self.ssl_context = ssl_context or ssl.create_default_context()

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        if s.security == "tls":
            return smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=self.ssl_context)
        return smtplib.SMTP(s.host, s.port, timeout=s.timeout)

    def _password(self) -> str | None:
        s = self.settings
        if not s.username:
            return None
        password = os.environ.get(s.password_env)
        if not password:
            raise DeliveryError(
                f"SMTP user is set but the environment variable {s.password_env} is empty",
                permanent=True,
            )
        return password

    def was_sent(self, message_id: str, sender: str) -> bool | None:
        return None  # SMTP cannot look back: resend with the same Message-ID

    def send(self, raw: bytes, sender: str, recipients: list[str]) -> Receipt:
        s = self.settings
        password = self._password()  # before connecting: a missing one is a config error

        # A server's reply may quote what it was sent: the password, or the base64 that
        # AUTH PLAIN (NUL user NUL password) and LOGIN carried it in.
        secrets = [password] if password else []
        if password and s.username:
            plain = f"\0{s.username}\0{password}".encode()
            secrets += [base64.b64encode(v).decode() for v in (plain, password.encode())]

        def clean(text: str) -> str:
            for secret in secrets:
                text = text.replace(secret, "***")
            return text

        try:
            client = self._connect()
            try:
                if s.security == "starttls":
                    client.starttls(context=self.ssl_context)
                if s.username and password:
                    _login(client, s.username, password)
                client.ehlo_or_helo_if_needed()
                eight_bit = not raw.isascii() and client.has_extn("8bitmime")
                options = ["BODY=8BITMIME"] if eight_bit else []
                refused = client.sendmail(sender, recipients, raw, mail_options=options)
            finally:
                _close(client)  # the answer to DATA decided; a failing QUIT changes nothing
        except smtplib.SMTPRecipientsRefused as e:  # nobody got it
            raise DeliveryError(
                clean(f"recipients refused: {_refusals(e.recipients)}"),
                recipient=", ".join(e.recipients),
                permanent=all(code >= 500 for code, _ in e.recipients.values()),
            ) from None
        except smtplib.SMTPResponseException as e:
            reply = e.smtp_error
            text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
            raise DeliveryError(
                clean(f"SMTP {e.smtp_code} {text}"),
                recipient=", ".join(recipients),
                permanent=e.smtp_code >= 500,
            ) from None
        except UnicodeError as e:
            raise DeliveryError(
                f"SMTP cannot carry a non-ASCII address or user name: {type(e).__name__}",
                recipient=", ".join(recipients),
                permanent=True,
            ) from None
        except (TimeoutError, smtplib.SMTPException, OSError) as e:
            raise DeliveryError(
                clean(f"SMTP connection to {s.host}:{s.port} failed: {type(e).__name__}: {e}"),
                recipient=", ".join(recipients),
            ) from None
        if refused:  # the others got it: a retry would send it to them again
            delivered = len(recipients) - len(refused)
            raise DeliveryError(
                clean(
                    f"refused by the server for {_refusals(refused)}; "
                    f"delivered to the {delivered} other recipient(s)"
                ),
                recipient=", ".join(refused),
                permanent=True,
            )
        return Receipt(self.name, f"accepted by {s.host} for {len(recipients)}")


def _refusals(refused: dict[str, tuple[int, bytes]]) -> str:
    return ", ".join(
        f"{address} ({code} {reply.decode(errors='replace')})"
        for address, (code, reply) in refused.items()
    )


def _login(client: smtplib.SMTP, username: str, password: str) -> None:
    """AUTH. smtplib sends credentials as ASCII only, so non-ASCII ones (a password with
    ä or ö) go as UTF-8 (RFC 4616) by AUTH PLAIN, or LOGIN where PLAIN is not offered."""
    if username.isascii() and password.isascii():
        client.login(username, password)
        return
    client.ehlo_or_helo_if_needed()
    if not client.has_extn("auth"):
        raise smtplib.SMTPNotSupportedError("SMTP AUTH extension not supported by server.")
    offered = client.esmtp_features["auth"].upper().split()

    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    if "PLAIN" in offered:
        code, reply = client.docmd("AUTH", "PLAIN " + b64(f"\0{username}\0{password}"))
    elif "LOGIN" in offered:
        code, reply = client.docmd("AUTH", "LOGIN " + b64(username))
        if code == 334:
            code, reply = client.docmd(b64(password))
    else:
        raise smtplib.SMTPNotSupportedError("no AUTH PLAIN or LOGIN for a non-ASCII password")
    if code not in (235, 503):  # 503: already authenticated
        raise smtplib.SMTPAuthenticationError(code, reply)


def _close(client: smtplib.SMTP) -> None:
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        pass
    finally:
        client.close()


class MailSettings(BaseModel):
    """The ``mail:`` block of region.yaml. Secrets never go here: only names of env vars."""

    model_config = ConfigDict(extra="forbid")
    transport: Literal["file", "smtp", "ews", "graph"] = "file"
    outbox: str = Field("outbox", description="Folder of the file outbox, relative to --out")
    smtp: SmtpSettings | None = None
    ews: EwsSettings | None = None
    graph: GraphSettings | None = None


def make_transport(settings: MailSettings, out_dir: Path) -> Transport:
    """The transport the configuration chooses; ``HYTETU_TRANSPORT=file`` forces a dry run."""
    choice = os.environ.get("HYTETU_TRANSPORT") or settings.transport
    if choice == "smtp":
        if settings.smtp is None:
            raise DeliveryError("mail.transport is smtp but mail.smtp is missing", permanent=True)
        return SmtpTransport(settings.smtp)
    if choice == "ews":
        if settings.ews is None:
            raise DeliveryError("mail.transport is ews but mail.ews is missing", permanent=True)
        from hytetu.ews import EwsTransport

        return EwsTransport(settings.ews)
    if choice == "graph":
        if settings.graph is None:
            raise DeliveryError("mail.transport is graph but mail.graph is missing", permanent=True)
        from hytetu.graph import GraphTransport

        return GraphTransport(settings.graph)
    return FileOutbox(out_dir / settings.outbox)
