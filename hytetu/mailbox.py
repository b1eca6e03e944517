"""Handling what comes back: each message of the county's mailbox read once, recognised
(``hytetu.replies``), matched to what hytetu sent, and acted on.

- an RSVP (iTIP REPLY) sets the contact's answer for the session (the latest wins);
- a bounce makes the outbox row ``bounced`` with the reason; a delay report is noted;
- a registry's receipt notes the letter filed, with the registry's diary number;
- an out-of-office or other automatic reply is ignored (never a receipt, never feedback);
- anything else is left in the mailbox, unmarked, and counted.

Each message is one transaction, keyed by (mailbox, key): a re-run handles nothing twice,
also after a crash between the transaction and ``mark_handled`` (the message is then only
marked). One bad message is logged with its Message-ID and skipped.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from hytetu import db
from hytetu.calendar import session_uid
from hytetu.errors import MailboxError
from hytetu.inbox import MailboxReader
from hytetu.replies import Classified, UnreadableMessage, classify

log = logging.getLogger(__name__)

#: The kinds that are acted on or ignored, and so marked in the mailbox; the rest stay.
MARKED = {"rsvp", "bounce", "delayed", "receipt", "auto_reply"}
KINDS = ("rsvp", "bounce", "delayed", "receipt", "auto_reply", "other", "unreadable")


@dataclass
class MailboxReport:
    mailbox: str
    counts: Counter[str] = field(default_factory=Counter)  # per kind, this run
    skipped: int = 0  # already handled by an earlier run
    remarked: int = 0  # handled earlier but not marked (a crash): marked now
    errors: list[str] = field(default_factory=list)  # messages not handled, and why
    bounced: list[str] = field(default_factory=list)  # "recipient: reason", for people

    @property
    def read(self) -> int:
        return sum(self.counts.values())


def read_mailbox(url: str | None, reader: MailboxReader, region_id: int) -> MailboxReport:
    """Read every message ``reader`` has, handle the new ones, mark those handled."""
    report = MailboxReport(reader.mailbox)
    with db.session_scope(url) as s:
        known = dict(
            s.execute(
                select(db.IncomingMessage.key, db.IncomingMessage.kind).filter_by(
                    mailbox=reader.mailbox
                )
            ).all()
        )
    try:
        with db.session_scope(url) as s:
            matcher = Matcher(s, region_id)
        for mail in reader.fetch():
            if mail.key in known:
                if known[mail.key] in MARKED:  # handled, but the mark was lost
                    _mark(reader, mail.key, report)
                    report.remarked += 1
                else:
                    report.skipped += 1
                continue
            kind = _handle_one(url, reader.mailbox, mail.key, mail.raw, matcher, report)
            if kind is None:
                continue
            known[mail.key] = kind
            report.counts[kind] += 1
            if kind in MARKED:
                _mark(reader, mail.key, report)
    except MailboxError:
        raise
    except Exception as e:  # the server, not a message: this phase fails, clearly
        raise MailboxError(
            f"reading {reader.mailbox} failed: {type(e).__name__}: {e}", mailbox=reader.mailbox
        ) from None
    finally:
        reader.close()
    return report


def _mark(reader: MailboxReader, key: str, report: MailboxReport) -> None:
    try:
        reader.mark_handled(key)
    except Exception as e:  # handled and stored: the next run only marks it
        log.warning("could not mark %s handled in %s: %s", key, reader.mailbox, e)
        report.errors.append(f"{key}: not marked handled ({e}); marked on the next run")


def _handle_one(
    url: str | None,
    mailbox: str,
    key: str,
    raw: bytes,
    matcher: Matcher,
    report: MailboxReport,
) -> str | None:
    """One message, one transaction. Returns its kind, or None if it was not stored."""
    try:
        c: Classified | None = classify(raw)
    except UnreadableMessage as e:
        log.warning("unreadable message %s (%s in %s): %s", e.message_id, key, mailbox, e)
        c = None
        unreadable = (str(e), e.message_id)
    try:
        with db.session_scope(url) as s:
            if c is None:
                row = db.IncomingMessage(
                    mailbox=mailbox,
                    key=key,
                    message_id=unreadable[1],
                    kind="unreadable",
                    state="left",
                    detail={"error": unreadable[0]},
                )
                s.add(row)
                s.flush()
                return "unreadable"
            return matcher.apply(s, mailbox, key, c, report)
    except IntegrityError:  # another run stored it meanwhile
        report.skipped += 1
        return None
    except Exception as e:  # one bad message never stops the rest
        mid = c.message_id if c else None
        log.warning("message %s (%s in %s) not handled: %s", mid, key, mailbox, e)
        report.errors.append(f"{mid or key}: {type(e).__name__}: {e}")
        return None


@dataclass
class _Sent:
    id: int
    cycle_id: int
    purpose: str
    recipients: list[str]
    dedupe_key: str


class Matcher:
    """What a message refers to, from what hytetu sent (loaded once per run)."""

    def __init__(self, s: Any, region_id: int) -> None:
        cycles = {c.id: c for c in s.scalars(select(db.Cycle).filter_by(region_id=region_id))}
        sender = s.get_one(db.Region, region_id).sender_email
        self.region_id = region_id
        self.sessions: dict[str, tuple[int, int]] = {}  # UID -> (cycle id, session id)
        for ms in s.scalars(
            select(db.MeetingSession).where(db.MeetingSession.cycle_id.in_(cycles))
        ):
            uid = session_uid(cycles[ms.cycle_id].year, ms.key, sender)
            self.sessions[uid.lower()] = (ms.cycle_id, ms.id)
        self.contacts: dict[str, int] = {
            c.email.lower(): c.id
            for c in s.scalars(select(db.Contact).filter_by(region_id=region_id))
        }
        self.registries = {
            m.registry_email.lower()
            for m in s.scalars(select(db.Municipality).filter_by(region_id=region_id))
        }

    def sent(self, s: Any, message_ids: list[str]) -> _Sent | None:
        """The first of ``message_ids`` that is one of ours."""
        if not message_ids:
            return None
        M = db.OutgoingMessage
        rows = {
            m.message_id: m
            for m in s.scalars(
                select(M).where(M.message_id.in_(message_ids[:50]), M.cycle_id.in_(self._cycles(s)))
            )
        }
        for mid in message_ids:
            m = rows.get(mid)
            if m is not None:
                return _Sent(m.id, m.cycle_id, m.purpose, list(m.recipients), m.dedupe_key)
        return None

    def _cycles(self, s: Any) -> Any:
        return select(db.Cycle.id).filter_by(region_id=self.region_id).scalar_subquery()

    def letter_to(self, s: Any, address: str, subject: str = "") -> db.OutgoingMessage | None:
        """The memo letter sent to ``address`` (a registry) that ``subject`` quotes (a
        receipt's "Vastaanottokuittaus / <our subject>"), else the newest one sent there."""
        M = db.OutgoingMessage
        newest = None
        # Only the columns needed: a letter's raw bytes (the PDFs) stay in the database.
        for row_id, recipients, sent_subject in s.execute(
            select(M.id, M.recipients, M.subject)
            .where(M.purpose == "memo", M.cycle_id.in_(self._cycles(s)), M.sent_at.is_not(None))
            .order_by(M.id.desc())
        ):
            if address in (r.lower() for r in recipients):
                if subject and sent_subject and sent_subject in subject:
                    return s.get(M, row_id)
                newest = newest or row_id
        return s.get(M, newest) if newest is not None else None

    def apply(self, s: Any, mailbox: str, key: str, c: Classified, report: MailboxReport) -> str:
        sent = self.sent(s, c.refers_to)
        kind, state, outgoing_id = c.kind, "left", sent.id if sent else None
        detail = c.as_detail()
        row = db.IncomingMessage(
            mailbox=mailbox,
            key=key,
            message_id=c.message_id,
            sender=c.sender,
            subject=c.subject,
            kind=kind,
            state=state,
            detail=detail,
            received_at=c.date,
            outgoing_message_id=outgoing_id,
        )
        s.add(row)
        s.flush()
        if c.kind == "rsvp":
            matched = [self._rsvp(s, row, r, c) for r in c.replies]
            row.state = "handled"
            detail["matched"] = sum(matched)
        elif c.kind in ("bounce", "delayed"):
            row.outgoing_message_id = self._bounce(s, c, sent, report)
            row.state = "handled"
        elif c.sender in self.registries and (
            (sent is not None and sent.purpose == "memo") or c.reference or c.auto
        ):
            # A registry's receipt is an automatic reply too; it is a receipt because it
            # comes from a registry we wrote to and refers to the letter or files it.
            letter = s.get(db.OutgoingMessage, sent.id) if sent and sent.purpose == "memo" else None
            letter = letter or self.letter_to(s, c.sender or "", c.subject)
            if letter is not None:
                row.kind, row.state, row.outgoing_message_id = "receipt", "handled", letter.id
                letter.receipt_at = c.date or db.utcnow()
                if c.reference:
                    letter.registry_reference = c.reference[:200]
            elif c.auto:
                row.kind, row.state = "auto_reply", "ignored"
        elif c.kind == "auto_reply":
            row.state = "ignored"
        row.detail = dict(detail)
        return row.kind

    def _rsvp(self, s: Any, row: db.IncomingMessage, r: Any, c: Classified) -> bool:
        where = self.sessions.get(r.uid.lower())
        contact_id = self.contacts.get(r.attendee) or (
            self.contacts.get(c.sender or "") if c.sender else None
        )
        if where is None or contact_id is None:
            return False
        cycle_id, session_id = where
        answered = r.dtstamp or c.date or db.utcnow()
        existing = s.scalars(
            select(db.Rsvp).filter_by(session_id=session_id, contact_id=contact_id)
        ).one_or_none()
        if existing is not None:
            if (r.sequence, answered) < (existing.sequence, existing.answered_at):
                return True  # an older answer read late: the newer one stands
            existing.partstat, existing.sequence, existing.answered_at = (
                r.partstat,
                r.sequence,
                answered,
            )
            existing.delegated_to, existing.incoming_message_id = r.delegated_to, row.id
            return True
        s.add(
            db.Rsvp(
                cycle_id=cycle_id,
                session_id=session_id,
                contact_id=contact_id,
                partstat=r.partstat,
                sequence=r.sequence,
                answered_at=answered,
                delegated_to=r.delegated_to,
                incoming_message_id=row.id,
            )
        )
        s.flush()
        return True

    def _bounce(
        self, s: Any, c: Classified, sent: _Sent | None, report: MailboxReport
    ) -> int | None:
        letter = s.get(db.OutgoingMessage, sent.id) if sent else None
        for f in c.failures:
            if letter is not None and (
                f.recipient in (r.lower() for r in letter.recipients) or len(c.failures) == 1
            ):
                target: db.OutgoingMessage | None = letter  # (a rewritten address: the one)
            else:
                target = self.letter_to(s, f.recipient, c.subject)
            if target is None:
                continue
            now = c.date or db.utcnow()
            if f.action == "failed":
                if target.state in ("sent", "sending"):
                    target.state = "bounced"
                target.bounced_at = now
                target.bounce_reason = f"{f.recipient}: {f.reason}"[:2000]
                report.bounced.append(target.bounce_reason)
            else:
                target.delayed_at = now
                if not target.bounce_reason:
                    target.last_error = f"delayed: {f.recipient}: {f.reason}"[:2000]
            letter = letter or target
        return letter.id if letter is not None else None


def attendance(s: Any, cycle_id: int, as_of: datetime | None = None) -> list[dict[str, Any]]:
    """Per session (those not yet begun ``as_of``; all when None) and organisation: how
    many invited contacts accepted, are tentative, declined, or have not answered."""
    sessions = list(
        s.scalars(
            select(db.MeetingSession)
            .filter_by(cycle_id=cycle_id)
            .order_by(db.MeetingSession.start, db.MeetingSession.key)
        )
    )
    rows = []
    for ms in sessions:
        if as_of is not None and ms.start <= as_of:
            continue
        invited = s.execute(
            select(db.Contact.id, db.Contact.org_key)
            .join(db.Invitation, db.Invitation.contact_id == db.Contact.id)
            .where(db.Invitation.session_id == ms.id, db.Invitation.method == "REQUEST")
        ).all()
        answers = dict(
            s.execute(
                select(db.Rsvp.contact_id, db.Rsvp.partstat).filter_by(session_id=ms.id)
            ).all()
        )
        per_org: dict[str, Counter[str]] = {}
        for contact_id, org in invited:
            answer = answers.get(contact_id, "NEEDS-ACTION")
            per_org.setdefault(org, Counter())[answer] += 1
        for org, counts in sorted(per_org.items()):
            rows.append(
                {
                    "session": ms.key,
                    "start": ms.start,
                    "org": org,
                    "accepted": counts["ACCEPTED"],
                    "tentative": counts["TENTATIVE"],
                    "declined": counts["DECLINED"],
                    "delegated": counts["DELEGATED"],
                    "no_answer": counts["NEEDS-ACTION"],
                }
            )
    return rows


def answered(s: Any, session_id: int) -> dict[int, str]:
    """contact id -> PARTSTAT of those who answered the session's invitation."""
    return dict(
        s.execute(
            select(db.Rsvp.contact_id, db.Rsvp.partstat).filter_by(session_id=session_id)
        ).all()
    )


def counts(s: Any, mailbox: str | None = None, cycle_id: int | None = None) -> dict[str, int]:
    """How many messages of each kind were read (from ``mailbox``, or all; with
    ``cycle_id`` only those that answered that cycle's mail)."""
    from sqlalchemy import func

    query = select(db.IncomingMessage.kind, func.count()).group_by(db.IncomingMessage.kind)
    if mailbox:
        query = query.where(db.IncomingMessage.mailbox == mailbox)
    if cycle_id is not None:  # about its outbox rows, or an RSVP to one of its sessions
        ours = select(db.OutgoingMessage.id).where(db.OutgoingMessage.cycle_id == cycle_id)
        rsvps = select(db.Rsvp.incoming_message_id).where(db.Rsvp.cycle_id == cycle_id)
        query = query.where(
            db.IncomingMessage.outgoing_message_id.in_(ours) | db.IncomingMessage.id.in_(rsvps)
        )
    found = dict(s.execute(query).all())
    return {k: int(found.get(k, 0)) for k in KINDS}
