"""The outbox: every message is a row before it is sent, and is sent at most once.

``enqueue`` stores a message under a dedupe key (a second enqueue with the same key is a
no-op). ``deliver_pending`` claims rows one at a time with a conditional UPDATE
(pending -> sending), so two runs never send the same row, sends, and records the outcome.
A row left in ``sending`` by a crash is re-sent with the same Message-ID when ``recover``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from hytetu import db
from hytetu.errors import DeliveryError
from hytetu.mail import Transport, message_id_for

MAX_ATTEMPTS = 5


def enqueue(
    session: Session,
    *,
    cycle_id: int,
    dedupe_key: str,
    purpose: str,
    sender_email: str,
    build: Callable[[str], EmailMessage],
    memo_version_id: int | None = None,
) -> tuple[db.OutgoingMessage, bool]:
    """Store the message ``build(message_id)`` unless ``dedupe_key`` is known.

    Returns the row and whether it was created now.
    """
    existing = session.scalars(
        select(db.OutgoingMessage).filter_by(dedupe_key=dedupe_key)
    ).one_or_none()
    if existing is not None:
        return existing, False
    message_id = message_id_for(dedupe_key, sender_email)
    msg = build(message_id)
    recipients = [
        a.addr_spec for header in ("To", "Cc") for a in getattr(msg[header], "addresses", ())
    ]
    row = db.OutgoingMessage(
        cycle_id=cycle_id,
        dedupe_key=dedupe_key,
        message_id=message_id,
        purpose=purpose,
        recipients=recipients,
        subject=str(msg["Subject"]),
        raw=msg.as_bytes(),
        memo_version_id=memo_version_id,
        state="pending",
    )
    session.add(row)
    session.flush()
    return row, True


@dataclass
class DeliveryReport:
    sent: list[int] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)
    retry_later: list[tuple[int, str]] = field(default_factory=list)
    recovered: list[int] = field(default_factory=list)


def deliver_pending(
    url: str | None,
    transport: Transport,
    *,
    cycle_id: int,
    sender_email: str,
    purposes: list[str] | None = None,
    recover: bool = False,
) -> DeliveryReport:
    """Send every pending message of the cycle, one transaction per state change."""
    report = DeliveryReport()
    states = ["pending", "sending"] if recover else ["pending"]
    with db.session_scope(url) as s:
        query = select(db.OutgoingMessage.id, db.OutgoingMessage.state).where(
            db.OutgoingMessage.cycle_id == cycle_id, db.OutgoingMessage.state.in_(states)
        )
        if purposes:
            query = query.where(db.OutgoingMessage.purpose.in_(purposes))
        candidates = list(s.execute(query.order_by(db.OutgoingMessage.id)))
    for row_id, state in candidates:
        with db.session_scope(url) as s:
            claim = update(db.OutgoingMessage).where(
                db.OutgoingMessage.id == row_id, db.OutgoingMessage.state == state
            )
            result = s.execute(
                claim.values(state="sending", attempts=db.OutgoingMessage.attempts + 1)
            )
            claimed = cast("CursorResult[Any]", result).rowcount
            if not claimed:
                continue  # another run took it
            row = s.get_one(db.OutgoingMessage, row_id)
            raw, recipients, attempts = row.raw, list(row.recipients), row.attempts
        if state == "sending":
            report.recovered.append(row_id)
        try:
            receipt = transport.send(raw, sender_email, recipients)
        except DeliveryError as e:
            final = e.permanent or attempts >= MAX_ATTEMPTS
            with db.session_scope(url) as s:
                row = s.get_one(db.OutgoingMessage, row_id)
                row.state = "failed" if final else "pending"
                row.last_error = str(e)
            (report.failed if final else report.retry_later).append((row_id, str(e)))
            continue
        with db.session_scope(url) as s:
            row = s.get_one(db.OutgoingMessage, row_id)
            row.state = "sent"
            row.sent_at = db.utcnow()
            row.receipt = f"{receipt.transport}: {receipt.detail}"
            row.last_error = None
        report.sent.append(row_id)
    return report
