"""E-mail messages and the transports that send them.

Every transport has one method, ``send(raw, sender, recipients) -> Receipt``, and sends the
exact bytes it is given, so the Message-ID, calendar part and attachments are the same
whatever the channel. The file outbox is the default and the dry run.
"""

from __future__ import annotations

import hashlib
import os
import re
import smtplib
import ssl
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from hytetu.errors import DeliveryError


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
    """Header values must not carry line breaks (header injection)."""
    return re.sub(r"[\r\n\t]+", " ", value).strip()


def _address(name: str, email: str) -> Address:
    username, domain = email.rsplit("@", 1)
    return Address(display_name=_one_line(name), username=username, domain=domain)


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
    msg["Subject"] = _one_line(subject)
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = message_id
    msg["Content-Language"] = language
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
    return msg


def slug(text: str, max_length: int = 60) -> str:
    """ascii-safe file name part: 'Jämsä, Keuruu' -> 'jamsa-keuruu'."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:max_length] or "x"


class Transport(Protocol):
    name: str

    def send(self, raw: bytes, sender: str, recipients: list[str]) -> Receipt: ...


class FileOutbox:
    """Writes each message as an .eml file; nothing leaves the machine."""

    name = "file"

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def send(self, raw: bytes, sender: str, recipients: list[str]) -> Receipt:
        self.folder.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(raw).hexdigest()[:10]
        path = self.folder / f"{slug(recipients[0], 40)}-{digest}.eml"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(raw)
        tmp.replace(path)
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


class SmtpTransport:
    """SMTP submission (STARTTLS, implicit TLS or plain on a trusted relay), with AUTH."""

    name = "smtp"

    def __init__(self, settings: SmtpSettings, ssl_context: ssl.SSLContext | None = None) -> None:
        self.settings = settings
        self.ssl_context = ssl_context or ssl.create_default_context()

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        if s.security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                s.host, s.port, timeout=s.timeout, context=self.ssl_context
            )
        else:
            client = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            if s.security == "starttls":
                client.starttls(context=self.ssl_context)
        if s.username:
            password = os.environ.get(s.password_env)
            if password is None:
                raise DeliveryError(
                    f"SMTP user is set but the environment variable {s.password_env} is empty",
                    permanent=True,
                )
            client.login(s.username, password)
        return client

    def send(self, raw: bytes, sender: str, recipients: list[str]) -> Receipt:
        try:
            with self._connect() as client:
                refused = client.sendmail(sender, recipients, raw)
        except smtplib.SMTPRecipientsRefused as e:
            code, reason = next(iter(e.recipients.values()))
            raise DeliveryError(
                f"recipient refused: {code} {reason.decode(errors='replace')}",
                recipient=", ".join(e.recipients),
                permanent=code >= 500,
            ) from None
        except smtplib.SMTPResponseException as e:
            raise DeliveryError(
                f"SMTP {e.smtp_code} {e.smtp_error.decode(errors='replace')}",
                recipient=", ".join(recipients),
                permanent=e.smtp_code >= 500,
            ) from None
        except (TimeoutError, smtplib.SMTPException, OSError) as e:
            raise DeliveryError(
                f"SMTP connection to {self.settings.host}:{self.settings.port} failed: "
                f"{type(e).__name__}: {e}",
                recipient=", ".join(recipients),
            ) from None
        if refused:
            raise DeliveryError(
                f"refused by the server: {', '.join(refused)}",
                recipient=", ".join(refused),
                permanent=True,
            )
        return Receipt(self.name, f"accepted by {self.settings.host} for {len(recipients)}")


class MailSettings(BaseModel):
    """The ``mail:`` block of region.yaml. Secrets never go here: only names of env vars."""

    model_config = ConfigDict(extra="forbid")
    transport: Literal["file", "smtp"] = "file"
    outbox: str = Field("outbox", description="Folder of the file outbox, relative to --out")
    smtp: SmtpSettings | None = None


def make_transport(settings: MailSettings, out_dir: Path) -> Transport:
    """The transport the configuration chooses; ``HYTETU_TRANSPORT=file`` forces a dry run."""
    choice = os.environ.get("HYTETU_TRANSPORT") or settings.transport
    if choice == "smtp":
        if settings.smtp is None:
            raise DeliveryError("mail.transport is smtp but mail.smtp is missing", permanent=True)
        return SmtpTransport(settings.smtp)
    return FileOutbox(out_dir / settings.outbox)
