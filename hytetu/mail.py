"""E-mail messages and the transports that send them.

Every transport has one method, ``send(raw, sender, recipients) -> Receipt``, and sends the
exact bytes it is given, so the Message-ID, calendar part and attachments are the same
whatever the channel. The file outbox is the default and the dry run.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import smtplib
import ssl
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.headerregistry import Address, BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.policy import Policy
from email.utils import format_datetime
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hytetu.errors import DeliveryError
from hytetu.inbox import InboxSettings, loopback
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


#: What a message is for, as ``build_message`` is told; each decides the headers below.
MessagePurpose = Literal[
    "invitation",  # an iTIP REQUEST or CANCEL to a participant
    "reminder",  # a reminder of a session
    "feedback_open",  # the notice that the feedback window is open
    "feedback_reminder",  # the reminder before its deadline
    "registry_letter",  # a memo to a municipality's registry (kirjaamo)
    "contact_letter",  # a memo to people (the summary to stakeholders' contacts)
]

#: Per purpose: (``Auto-Submitted``, ``X-Auto-Response-Suppress``); None leaves it out.
#: The one place this is decided. ``Auto-Submitted: auto-generated`` (RFC 3834 section 5)
#: marks the notices and reminders as sent by a program, so that no vacation responder
#: answers them. ``X-Auto-Response-Suppress`` ([MS-OXCMAIL] 2.1.3.2.20) asks Exchange not to
#: send Out of Office replies (OOF) and, for notices, other automatic replies (AutoReply)
#: for anything sent to people: a send reaches about 90 of them. Delivery and non-delivery
#: reports are never suppressed (a bounce is how a wrong address is found). Invitations are
#: not marked Auto-Submitted: their attendees' replies (accept, decline) are wanted, also
#: from calendars that answer by themselves. Registry letters carry neither: the registry's
#: automatic receipt (kirjaamon vastaanottokuittaus) is the proof of delivery.
AUTOMATIC_REPLIES: dict[str, tuple[str | None, str | None]] = {
    "invitation": (None, "OOF"),
    "reminder": ("auto-generated", "OOF, AutoReply"),
    "feedback_open": ("auto-generated", "OOF, AutoReply"),
    "feedback_reminder": ("auto-generated", "OOF, AutoReply"),
    "registry_letter": (None, None),
    "contact_letter": (None, "OOF"),
}

#: Every part of every message is 7-bit on the wire, so any relay takes it without
#: 8BITMIME (RFC 6152): text as quoted-printable (readable in the raw), calendars as base64
#: (byte-exact CRLF lines, what Exchange itself sends), attachments as base64.
TEXT_ENCODING = "quoted-printable"
CALENDAR_ENCODING = "base64"

_EW_PREFIX, _EW_SUFFIX = "=?utf-8?q?", "?="
_EW_MAX = 75  # RFC 2047 section 2: an encoded word is at most 75 characters
_Q_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!*+-/")


def _q(char: str) -> str:
    """One character in RFC 2047 "Q" encoding (section 4.2), of the UTF-8 octets."""
    if char in _Q_SAFE:
        return char
    if char == " ":
        return "_"
    return "".join(f"={octet:02X}" for octet in char.encode("utf-8"))


def fold_text_header(name: str, value: str, maxlen: int = 78, linesep: str = "\r\n") -> str:
    """``name: value`` folded at spaces into lines of at most ``maxlen``, words that are not
    ASCII as RFC 2047 encoded words, none of them empty.

    The ``email`` package's own folder (CPython 3.11 to 3.14, gh-136052) writes an empty
    encoded word ``=?utf-8?q??=`` when the room left on a line is too small for the first
    encoded character (a dash is 9 octets as =E2=80=93), which RFC 2047 forbids and
    which some clients show. Here a word that does not fit starts the next line.

    Runs of non-ASCII words are encoded together with the spaces between them, because
    white space between two encoded words is not displayed (RFC 2047 section 6.2); a space
    between an ASCII word and an encoded one is the folding white space and stays.
    """
    words = value.split(" ")
    # (plain?, text): consecutive words to encode become one run
    runs: list[tuple[bool, str]] = []
    for word in words:
        plain = word.isascii() and "=?" not in word
        # an empty word (two spaces) next to an encoded run stays in it: not displayed else
        if runs and not runs[-1][0] and (not plain or not word):
            runs[-1] = (False, runs[-1][1] + " " + word)
        else:
            runs.append((plain, word))
    lines = [f"{name}:"]

    def place(token: str) -> None:
        # a new line only after one with a word on it: an empty line would end the header
        if len(lines[-1]) + 1 + len(token) > maxlen and lines[-1].strip() not in ("", f"{name}:"):
            lines.append("")
        lines[-1] += " " + token

    for plain, text in runs:
        if plain:
            place(text)
            continue
        whole = len(_EW_PREFIX) + sum(len(_q(c)) for c in text) + len(_EW_SUFFIX)
        if whole > maxlen - len(lines[-1]) - 1 and whole <= min(maxlen - 1, _EW_MAX):
            lines.append("")  # the run fits on a line of its own: not split
        word = ""
        for char in text:
            code = _q(char)
            room = min(maxlen - len(lines[-1]) - 1, _EW_MAX)
            size = len(_EW_PREFIX) + len(word) + len(code) + len(_EW_SUFFIX)
            if size > room:
                if word:  # close this encoded word; the next one goes on a new line
                    place(_EW_PREFIX + word + _EW_SUFFIX)
                    word = ""
                lines.append("")
            word += code
        place(_EW_PREFIX + word + _EW_SUFFIX)
    return linesep.join(lines) + linesep


class _TextHeader(UnstructuredHeader, BaseHeader):
    """Subject: folded by ``fold_text_header`` instead of the ``email`` package's folder.
    (BaseHeader is what the registry mixes in anyway; named here for the type checker.)"""

    def fold(self, *, policy: Policy) -> str:
        value = str(self)
        if value.isascii():
            return super().fold(policy=policy)
        maxlen = getattr(policy, "max_line_length", None) or 78
        return fold_text_header(self.name, value, maxlen, policy.linesep)


_headers = HeaderRegistry()
_headers.map_to_type("subject", _TextHeader)
#: SMTP line endings, 7-bit bodies (a forgotten part is never sent 8bit), our Subject fold.
POLICY = policy.SMTP.clone(cte_type="7bit", header_factory=_headers)


def build_message(
    *,
    sender: tuple[str, str],
    to: list[tuple[str, str]],
    subject: str,
    text: str,
    message_id: str,
    date: datetime,
    purpose: MessagePurpose,
    html: str | None = None,
    cc: list[tuple[str, str]] | None = None,
    calendar: bytes | None = None,
    calendar_method: str = "REQUEST",
    attachments: list[Attachment] | None = None,
    language: str = "fi",
) -> EmailMessage:
    """A MIME message: text (+ html, + text/calendar) alternatives, then attachments.

    ``purpose`` decides the automatic-reply headers (``AUTOMATIC_REPLIES``)."""
    auto_submitted, suppress = AUTOMATIC_REPLIES[purpose]
    msg = EmailMessage(policy=POLICY)
    msg["From"] = _address(*sender)
    msg["To"] = [_address(*r) for r in to]
    if cc:
        msg["Cc"] = [_address(*r) for r in cc]
    msg["Subject"] = _one_line(subject)
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = message_id
    if auto_submitted:
        msg["Auto-Submitted"] = auto_submitted
    if suppress:
        msg["X-Auto-Response-Suppress"] = suppress
    msg.set_content(text, cte=TEXT_ENCODING)
    if html is not None:
        msg.add_alternative(html, subtype="html", cte=TEXT_ENCODING)
    if calendar is not None:
        ics = calendar.decode("utf-8")
        params = {"method": calendar_method}
        msg.add_alternative(ics, subtype="calendar", params=params, cte=CALENDAR_ENCODING)
        msg.add_attachment(
            ics,
            subtype="calendar",
            filename="kutsu.ics" if language == "fi" else "inbjudan.ics",
            params=params,
            cte=CALENDAR_ENCODING,
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
        if self.username and self.security == "none" and not loopback(self.host):
            raise ValueError(
                "security none with a username would send the password unencrypted over "
                "the network; use starttls or tls (none is for a trusted relay without AUTH)"
            )
        return self


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
    inbox: InboxSettings = Field(default_factory=InboxSettings)


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
