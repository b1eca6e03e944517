"""What one message read from the county's mailbox is: an RSVP, a bounce, a registry's
receipt, an auto-reply, or something else. Plain parsing, no database.

Hostile mail is data: the message is parsed once with the standard library, only the
parts that matter are decoded (``text/calendar``, the DSN's ``message/delivery-status``
and the returned headers, and the first ``text/plain`` for a diary number); HTML is never
rendered, links never followed, other attachments never opened. A message that cannot be
parsed raises ``UnreadableMessage`` and the caller records and skips it.
"""

from __future__ import annotations

import email
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage, Message
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any, cast

#: At most this many MIME parts are looked at (a nested message/rfc822 bomb stops here).
MAX_PARTS = 200
#: At most this much of a text part is searched for a diary number.
MAX_TEXT_CHARS = 20_000

PARTSTATS = ("ACCEPTED", "TENTATIVE", "DECLINED", "DELEGATED")


class UnreadableMessage(Exception):
    """The message could not be parsed; ``message_id`` when its header was readable."""

    def __init__(self, reason: str, message_id: str | None = None) -> None:
        super().__init__(reason)
        self.message_id = message_id


@dataclass
class CalendarReply:
    """One VEVENT of an iTIP REPLY: who answered what about which UID."""

    uid: str
    attendee: str  # the mailto address, lower case
    partstat: str
    sequence: int
    dtstamp: datetime | None
    delegated_to: str | None = None


@dataclass
class Failure:
    """One recipient of a DSN: failed (a bounce) or delayed."""

    recipient: str
    action: str  # failed | delayed
    status: str = ""
    diagnostic: str = ""

    @property
    def reason(self) -> str:
        return "; ".join(p for p in (self.status, self.diagnostic) if p) or self.action


@dataclass
class Classified:
    """What a message is, and what ties it to what hytetu sent."""

    kind: str  # rsvp | bounce | delayed | auto_reply | registry_reply | other
    message_id: str | None
    sender: str | None
    subject: str
    date: datetime | None
    # Message-IDs this message refers to: In-Reply-To, References, and for a DSN the
    # returned message's own Message-ID first.
    refers_to: list[str] = field(default_factory=list)
    replies: list[CalendarReply] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    reference: str | None = None  # a registry's diary number, when the text carries one
    auto: bool = False  # marked as an automatic reply (RFC 3834 and others)

    def as_detail(self) -> dict[str, Any]:
        detail: dict[str, Any] = {"refers_to": self.refers_to[:20]}
        if self.replies:
            detail["replies"] = [
                {"uid": r.uid, "attendee": r.attendee, "partstat": r.partstat} for r in self.replies
            ]
        if self.failures:
            detail["failures"] = [
                {"recipient": f.recipient, "action": f.action, "reason": f.reason[:500]}
                for f in self.failures
            ]
        if self.reference:
            detail["reference"] = self.reference
        return detail


def classify(raw: bytes) -> Classified:
    """What ``raw`` is. Raises ``UnreadableMessage`` when it cannot be parsed."""
    message_id: str | None = None
    try:
        msg = email.message_from_bytes(raw, policy=policy.default)
        message_id = _header(msg, "Message-ID") or None
        return _classify(msg, raw, message_id)
    except UnreadableMessage as e:
        e.message_id = e.message_id or message_id
        raise
    except (Exception, RecursionError) as e:  # hostile or broken MIME: data, not a crash
        raise UnreadableMessage(f"{type(e).__name__}: {e}"[:500], message_id) from None


def _classify(msg: EmailMessage, raw: bytes, message_id: str | None) -> Classified:
    parts = _parts(msg)
    sender = _sender(msg)
    c = Classified(
        kind="other",
        message_id=message_id,
        sender=sender,
        subject=_header(msg, "Subject")[:500],
        date=_date(msg),
        refers_to=_message_ids(_header(msg, "In-Reply-To"))
        + _message_ids(_header(msg, "References")),
        auto=is_auto_reply(msg),
    )
    if _looks_like_bounce(msg, parts, sender):
        failures, returned = _delivery_status(parts, raw)
        if failures:
            c.failures = failures
            c.refers_to = returned + c.refers_to
            c.kind = "bounce" if any(f.action == "failed" for f in failures) else "delayed"
            return c
    for part in parts:
        if part.get_content_type() == "text/calendar":
            method = str(part.get_param("method") or "").upper()
            replies = _calendar_replies(part)
            if replies and method in ("REPLY", ""):
                c.replies = replies
                c.kind = "rsvp"
                return c
    c.reference = diary_number(c.subject + "\n" + _plain_text(parts))
    if c.auto:
        c.kind = "auto_reply"  # a registry's receipt is one too: the caller decides
    return c


def _parts(msg: Message) -> list[Message]:
    """The message's parts, depth first, at most MAX_PARTS (no part's payload decoded)."""
    out: list[Message] = []
    for part in msg.walk():
        out.append(part)
        if len(out) >= MAX_PARTS:
            break
    return out


def _header(msg: Message, name: str) -> str:
    try:
        value = msg.get(name)
    except Exception:  # a malformed header the policy cannot parse
        value = None
    return " ".join(str(value).split()) if value is not None else ""


def _sender(msg: Message) -> str | None:
    for name in ("From", "Sender", "Return-Path"):
        addresses = [a for _, a in getaddresses([_header(msg, name)]) if "@" in a]
        if addresses:
            return addresses[0].lower()
    return None


def _date(msg: Message) -> datetime | None:
    try:
        value = parsedate_to_datetime(_header(msg, "Date"))
    except (TypeError, ValueError, IndexError):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


_MSGID = re.compile(r"<[^<>\s]{1,500}>")


def _message_ids(value: str) -> list[str]:
    return _MSGID.findall(value)[:50]


#: Subjects of automatic replies, as mail systems and people set them (fi, sv, en).
AUTO_SUBJECTS = re.compile(
    r"^\s*(automaattinen vastaus|poissa toimistolta|poissaolo|lomalla|automatiskt svar|"
    r"frånvar|frånvaro|out of office|automatic reply|autoreply|auto-reply|abwesenheit)",
    re.IGNORECASE,
)


def is_auto_reply(msg: Message) -> bool:
    """An automatic reply (vacation, out of office, a registry's receipt): RFC 3834
    ``Auto-Submitted``, the headers Exchange, Postfix/vacation and others set, or the
    subject they give it."""
    auto_submitted = _header(msg, "Auto-Submitted").lower()
    if auto_submitted and not auto_submitted.startswith("no"):
        return True
    if any(
        _header(msg, h)
        for h in ("X-Autoreply", "X-Autorespond", "X-Auto-Reply", "X-MS-Exchange-Inbox-Rules-Loop")
    ):
        return True
    if _header(msg, "Precedence").lower() in ("auto_reply", "bulk", "junk"):
        return True
    # Exchange's Out of Office replies carry this (and, unlike our own mail, no In-Reply-To
    # from a person's client); a person's own reply from Outlook does not.
    if _header(msg, "X-Auto-Response-Suppress").lower() in ("all", "oof, autoreply"):
        return True
    return bool(AUTO_SUBJECTS.match(_header(msg, "Subject")))


_BOUNCE_SENDERS = re.compile(r"^(mailer-daemon|postmaster|microsoftexchange[0-9a-f]*)@", re.I)


def _looks_like_bounce(msg: Message, parts: list[Message], sender: str | None) -> bool:
    if msg.get_content_type() == "multipart/report":
        return True
    if any(p.get_content_type() == "message/delivery-status" for p in parts):
        return True
    return bool(sender and _BOUNCE_SENDERS.match(sender))


def _delivery_status(parts: list[Message], raw: bytes) -> tuple[list[Failure], list[str]]:
    """The recipients a DSN reports (failed or delayed) and the returned message's
    Message-ID. flufl.bounce (Mailman's detectors) decides who failed; the DSN's own
    ``message/delivery-status`` fields give each one's action and reason."""
    from flufl.bounce import all_failures

    compat = email.message_from_bytes(raw)  # flufl.bounce reads compat32 messages
    try:
        temporary, permanent = all_failures(compat)
    except Exception:  # a detector choking on hostile input: read the DSN fields alone
        temporary, permanent = frozenset(), frozenset()
    fields = _dsn_fields(parts)
    out: dict[str, Failure] = {}
    found = [(a, "failed") for a in permanent] + [(a, "delayed") for a in temporary]
    for detected, action in found:
        text = _address_text(detected)
        if "@" not in text or text in out:
            continue
        known = fields.get(text)
        out[text] = Failure(
            text, action, known.status if known else "", known.diagnostic if known else ""
        )
    for dsn_address, f in fields.items():  # a DSN field flufl.bounce did not report
        if dsn_address not in out and f.action in ("failed", "delayed"):
            out[dsn_address] = f
    returned: list[str] = []
    for part in parts:
        ctype = part.get_content_type()
        if ctype in ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers"):
            returned += _returned_message_ids(part)
    return list(out.values()), returned


def _address_text(value: bytes | str) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return text.strip().strip("<>").lower()


def _dsn_fields(parts: list[Message]) -> dict[str, Failure]:
    """Final-Recipient, Action, Status and Diagnostic-Code per recipient (RFC 3464)."""
    out: dict[str, Failure] = {}
    for part in parts:
        if part.get_content_type() != "message/delivery-status":
            continue
        payload = part.get_payload()
        blocks: list[Message] = (
            [b for b in payload if isinstance(b, Message)] if isinstance(payload, list) else []
        )
        if isinstance(payload, str):  # not parsed into blocks: parse the text
            blocks = [email.message_from_string(b) for b in re.split(r"\r?\n\r?\n", payload)]
        for block in blocks:
            recipient = _header(block, "Final-Recipient") or _header(block, "Original-Recipient")
            action = _header(block, "Action").lower()
            if not recipient or not action:
                continue
            address = recipient.split(";", 1)[-1].strip().strip("<>").lower()
            out[address] = Failure(
                address,
                "failed" if action == "failed" else action,
                _header(block, "Status"),
                _header(block, "Diagnostic-Code")[:500],
            )
    return out


def _returned_message_ids(part: Message) -> list[str]:
    payload = part.get_payload()
    if isinstance(payload, list) and payload:
        inner = payload[0]
        if isinstance(inner, Message):
            return _message_ids(_header(inner, "Message-ID"))
    if isinstance(payload, str):
        headers = email.message_from_string(payload.split("\n\n", 1)[0])
        return _message_ids(_header(headers, "Message-ID"))
    return []


def _calendar_replies(part: Message) -> list[CalendarReply]:
    """The REPLY's VEVENTs. A calendar that does not parse is an unreadable message."""
    from icalendar import Calendar

    data = part.get_payload(decode=True)
    if not isinstance(data, bytes) or not data.strip():
        return []
    try:
        cal = Calendar.from_ical(data.decode("utf-8", "replace"))
    except Exception as e:
        raise UnreadableMessage(f"text/calendar does not parse: {e}"[:500]) from None
    method = str(cal.get("METHOD", "")).upper()
    if method and method != "REPLY":
        return []
    out = []
    for ev in cal.walk("VEVENT"):
        attendees = ev.get("ATTENDEE")
        if attendees is None:
            continue
        for a in attendees if isinstance(attendees, list) else [attendees]:
            partstat = str(a.params.get("PARTSTAT", "")).upper()
            if partstat not in PARTSTATS:
                continue
            address = str(a).split(":", 1)[-1].strip().lower()
            stamp = ev.get("DTSTAMP")
            when = stamp.dt if stamp is not None else None
            if isinstance(when, datetime) and when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            delegated = a.params.get("DELEGATED-TO")
            out.append(
                CalendarReply(
                    uid=str(ev.get("UID", "")),
                    attendee=address,
                    partstat=partstat,
                    sequence=int(ev.get("SEQUENCE", 0) or 0),
                    dtstamp=when if isinstance(when, datetime) else None,
                    delegated_to=str(delegated).split(":", 1)[-1].lower() if delegated else None,
                )
            )
    return out


def _plain_text(parts: list[Message]) -> str:
    """The first text/plain part that is not an attachment (never the HTML)."""
    for part in parts:
        if part.get_content_type() == "text/plain" and not part.get_filename():
            try:
                text = cast(EmailMessage, part).get_content()
            except Exception:
                payload = part.get_payload(decode=True)
                text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
            return str(text)[:MAX_TEXT_CHARS]
    return ""


#: A registry's reference as receipts write it: after the word for it (fi, sv), a token
#: that holds a digit (JKL/1234/00.01.00/2026, 2026-123, KUH 345/2026, Dnr 12/2026).
_REFERENCE = re.compile(
    r"(?:diaari(?:numero|nro)\w*|asianumero\w*|asiatunnu\w*|dnro|d:o|diarienummer\w*|"
    r"ärendenummer\w*|dnr|diarienr|registreringsnummer\w*)"
    r"\s*(?:on|är|:|-|\.|nro|nr)?\s*(?:on|är|:)?\s*"
    r"([A-ZÅÄÖ]{0,10}[ /]?[0-9][0-9A-Za-zÅÄÖåäö./:\-]*[0-9A-Za-z]|[0-9])",
    re.IGNORECASE,
)


def diary_number(text: str) -> str | None:
    """The registry's diary number (diaarinumero, asianumero, dnro; diarienummer, dnr)."""
    match = _REFERENCE.search(text)
    return match.group(1).strip() if match else None
