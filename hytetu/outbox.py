"""The outbox: every message is a row before it is sent, and is sent at most once.

``enqueue`` stores a message under a dedupe key with an INSERT … ON CONFLICT DO NOTHING, so
a second enqueue of the same key, even by another process at the same moment, is a no-op.
``deliver_pending`` claims rows one at a time with a conditional UPDATE (pending -> sending)
that also writes a lease (``claimed_at``, ``claimed_by``), so two runs never send the same
row; it sends, and records the outcome: ``sent``, back to ``pending`` for a later run, or
``failed`` with the reason.

What happens on each kind of error:

- ``DeliveryError`` that is temporary (SMTP 4xx, a dropped connection, EWS server busy):
  retried within the run with exponential back-off and jitter, at most ``retry.attempts``
  times; then the row goes back to ``pending`` (a later run tries again) until it has had
  ``MAX_ATTEMPTS`` attempts in all, when it is ``failed``.
- ``DeliveryError`` that is permanent (5xx, unknown recipient): ``failed`` at once; the
  other rows go on.
- Any other ``Exception`` from the transport (a bug, an unexpected library error): whether
  the message left is unknown, and retrying a bug in a loop helps nobody, so the row goes
  back to ``pending`` at once with the error recorded (counted towards ``MAX_ATTEMPTS``, so
  never endlessly) and is reported as a failure of this run; the other rows go on. A later
  run re-sends it with the same Message-ID.
- The process dies (SIGKILL, power cut, ``KeyboardInterrupt``): the row stays ``sending``
  with its lease. Every later run takes over rows whose lease ran out, and at once those
  whose holder was a process on this machine that is gone (the lease names host, pid
  namespace and pid: ``run_id``). It asks the transport ``was_sent`` (EWS and Graph search
  Sent Items for the Message-ID) and marks the row sent if so; when the transport cannot
  tell (SMTP) it re-sends the same bytes with the same Message-ID, so the receiver can
  drop a duplicate. The report lists those re-sent. A row whose lease has not run out and
  whose holder may be alive (another machine, or a pid that still runs) is left alone.
"""

from __future__ import annotations

import hashlib
import os
import random
import socket
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from functools import cache
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, and_, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from hytetu import db
from hytetu.errors import DeliveryError
from hytetu.mail import Transport, message_id_for

MAX_ATTEMPTS = 5
DEFAULT_LEASE_SECONDS = 600.0


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

    Returns the row and whether it was created now. Safe against a concurrent enqueue of
    the same key: the insert does nothing on a conflict and the other's row is returned.
    """
    query = select(db.OutgoingMessage).filter_by(dedupe_key=dedupe_key)
    existing = session.scalars(query).one_or_none()
    if existing is not None:
        return existing, False
    message_id = message_id_for(dedupe_key, sender_email)
    msg = build(message_id)
    recipients = [
        a.addr_spec for header in ("To", "Cc") for a in getattr(msg[header], "addresses", ())
    ]
    values = {
        "cycle_id": cycle_id,
        "dedupe_key": dedupe_key,
        "message_id": message_id,
        "purpose": purpose,
        "recipients": recipients,
        "subject": str(msg["Subject"]),
        "raw": msg.as_bytes(),
        "memo_version_id": memo_version_id,
        "state": "pending",
        "attempts": 0,
        "recovered": 0,
        "created_at": db.utcnow(),
    }
    session.flush()
    dialect = session.get_bind().dialect.name
    stmt: Any
    if dialect == "postgresql":
        stmt = postgresql.insert(db.OutgoingMessage).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(db.OutgoingMessage).on_conflict_do_nothing()
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        stmt = insert(db.OutgoingMessage)
    inserted = stmt.values(**values).returning(db.OutgoingMessage.id)
    created = session.execute(inserted).first() is not None
    row = session.scalars(query.execution_options(populate_existing=True)).one()
    return row, created


@dataclass
class RetryPolicy:
    """Retries of temporary errors within one run: exponential back-off with jitter."""

    attempts: int = 1  # tries per run; 1 = no retry within the run
    base: float = 2.0  # seconds before the first retry
    cap: float = 60.0  # longest wait
    sleep: Callable[[float], None] = time.sleep

    def delay(self, attempt: int) -> float:
        """Full jitter on an exponential step: uniform(0.5, 1.5) × base × 2^(n-1)."""
        return min(self.cap, self.base * 2 ** (attempt - 1)) * random.uniform(0.5, 1.5)


@dataclass
class DeliveryReport:
    sent: list[int] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)
    retry_later: list[tuple[int, str]] = field(default_factory=list)
    recovered: list[int] = field(default_factory=list)  # taken over from a dead run
    resent: list[int] = field(default_factory=list)  # of those, sent again (same Message-ID)
    found_sent: list[int] = field(default_factory=list)  # of those, the transport had sent
    retries: int = 0  # temporary errors retried within the run


def run_id() -> str:
    """Who holds a lease: ``host/machine:pid:random``. The random part tells two runs of
    one process apart; host, machine and pid let a later run see that the holder is gone."""
    return f"{_this_machine()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


@cache
def _this_machine() -> str:
    """The host name and a digest of what makes a pid mean one process: the kernel's boot
    (two hosts of one name, or a reboot, differ) and the pid namespace (two containers of
    one host differ, unless they share the host's pids)."""
    host = socket.gethostname()
    h = hashlib.sha256(host.encode())
    try:
        h.update(Path("/proc/sys/kernel/random/boot_id").read_bytes())
        h.update(os.fsencode(os.readlink("/proc/self/ns/pid")))
    except OSError:  # not Linux: the host name alone
        pass
    return f"{host[:60]}/{h.hexdigest()[:10]}"


def holder_is_gone(claimant: str | None) -> bool:
    """True when the run holding a lease was a process on this machine that no longer
    runs (or is a zombie). Anything else (another machine, an old-style or foreign name,
    a pid that runs, perhaps reused by another program) might be alive: the lease decides."""
    if not claimant or os.name != "posix":
        return False
    machine, _, rest = claimant.partition(":")
    pid_text, _, _ = rest.partition(":")
    if machine != _this_machine() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False  # this process: perhaps another thread's run
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # EPERM: it runs, as another user
        return False
    try:  # a zombie is dead but not yet reaped by its parent
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] in (["Z"], ["X"])


def gone_holders(session: Session, cycle_id: int, purposes: Collection[str] | None) -> set[str]:
    """The holders of the cycle's ``sending`` rows that are gone (``holder_is_gone``)."""
    M = db.OutgoingMessage
    query = select(M.claimed_by).where(M.cycle_id == cycle_id, M.state == "sending").distinct()
    if purposes:
        query = query.where(M.purpose.in_(purposes))
    return {c for c in session.scalars(query) if c is not None and holder_is_gone(c)}


def purposes_due(
    session: Session, cycle_id: int, lease_seconds: float = DEFAULT_LEASE_SECONDS
) -> set[str]:
    """The purposes that have a message a run would send now: pending, or left
    ``sending`` by a run whose lease ran out or whose process is gone. The daily tick runs
    the phases that deliver them."""
    M = db.OutgoingMessage
    gone = gone_holders(session, cycle_id, None)
    lease = timedelta(seconds=lease_seconds)
    query = select(M.purpose).where(M.cycle_id == cycle_id, _takeable(db.utcnow() - lease, gone))
    return set(session.scalars(query.distinct()))


def deliver_pending(
    url: str | None,
    transport: Transport,
    *,
    cycle_id: int,
    sender_email: str,
    purposes: list[str] | None = None,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    retry: RetryPolicy | None = None,
    limiter: Any | None = None,
    claimant: str | None = None,
) -> DeliveryReport:
    """Send every pending message of the cycle, one transaction per state change, and take
    over the rows a dead run left ``sending``: those whose lease (``lease_seconds`` since
    the last attempt) ran out, and those whose holder on this machine is gone.
    ``limiter.take()`` is called before each claim."""
    retry = retry or RetryPolicy()
    claimant = claimant or run_id()
    report = DeliveryReport()
    lease = timedelta(seconds=lease_seconds)
    with db.session_scope(url) as s:
        M = db.OutgoingMessage
        gone = gone_holders(s, cycle_id, purposes)
        query = select(M.id).where(M.cycle_id == cycle_id, _takeable(db.utcnow() - lease, gone))
        if purposes:
            query = query.where(M.purpose.in_(purposes))
        candidates = list(s.scalars(query.order_by(M.id)))
    slot_in_hand = False
    for row_id in candidates:
        if limiter is not None and not slot_in_hand:
            limiter.take()
            slot_in_hand = True
        claimed = _claim(url, row_id, claimant, lease, gone)
        if claimed is None:
            continue  # another run took it (or sent it) meanwhile: keep the slot
        slot_in_hand = False
        raw, recipients, message_id, was_sending, attempts = claimed
        if was_sending:
            report.recovered.append(row_id)
            if transport.was_sent(message_id, sender_email):
                _finish(url, row_id, claimant, "sent", receipt=f"{transport.name}: found sent")
                report.found_sent.append(row_id)
                continue
            report.resent.append(row_id)
        _send_claimed(
            url, transport, row_id, raw, sender_email, recipients, claimant, retry, report, attempts
        )
    return report


def _takeable(lease_ran_out_before: datetime, gone: Collection[str]) -> Any:
    """A row a run may claim: pending, or ``sending`` under a lease last renewed before
    ``lease_ran_out_before`` (or none: a row from before leases) or held by a gone run."""
    M = db.OutgoingMessage
    dead = or_(M.claimed_at.is_(None), M.claimed_at < lease_ran_out_before)
    if gone:
        dead = or_(dead, M.claimed_by.in_(sorted(gone)))
    return or_(M.state == "pending", and_(M.state == "sending", dead))


def _claim(
    url: str | None, row_id: int, claimant: str, lease: timedelta, gone: Collection[str]
) -> tuple[bytes, list[str], str, bool, int] | None:
    """pending -> sending (or a dead run's ``sending`` taken over), atomically, counting
    the attempt about to be made (one transaction per message saved)."""
    M = db.OutgoingMessage
    with db.session_scope(url) as s:
        now = db.utcnow()
        before = s.execute(select(M.state).where(M.id == row_id)).scalar_one()
        result = s.execute(
            update(M)
            .where(M.id == row_id, M.state == before, _takeable(now - lease, gone))
            .values(state="sending", claimed_at=now, claimed_by=claimant)
        )
        if cast("CursorResult[Any]", result).rowcount != 1:
            return None
        row = s.get_one(M, row_id)
        if before == "sending":
            row.recovered += 1
        _note_attempt(row, claimant, now)  # the first attempt, in the claim's transaction
        return row.raw, list(row.recipients), row.message_id, before == "sending", row.attempts


def _send_claimed(
    url: str | None,
    transport: Transport,
    row_id: int,
    raw: bytes,
    sender_email: str,
    recipients: list[str],
    claimant: str,
    retry: RetryPolicy,
    report: DeliveryReport,
    attempts: int,
) -> None:
    for try_in_run in range(1, max(retry.attempts, 1) + 1):
        if try_in_run > 1:  # the claim counted the first attempt
            attempts = _count_attempt(url, row_id, claimant)
        try:
            receipt = transport.send(raw, sender_email, recipients)
        except DeliveryError as e:
            reason = str(e)
            last = e.permanent or attempts >= MAX_ATTEMPTS
            if last:
                _finish(url, row_id, claimant, "failed", error=reason)
                report.failed.append((row_id, reason))
                return
            if try_in_run < retry.attempts:
                report.retries += 1
                _note_error(url, row_id, claimant, reason)
                retry.sleep(retry.delay(try_in_run))
                continue
            _finish(url, row_id, claimant, "pending", error=reason)
            report.retry_later.append((row_id, reason))
            return
        except Exception as e:  # not a DeliveryError: see the module docstring
            reason = f"unexpected {type(e).__name__}: {e}"
            final = attempts >= MAX_ATTEMPTS
            _finish(url, row_id, claimant, "failed" if final else "pending", error=reason)
            report.failed.append((row_id, reason))
            return
        _finish(url, row_id, claimant, "sent", receipt=f"{receipt.transport}: {receipt.detail}")
        report.sent.append(row_id)
        return


def _count_attempt(url: str | None, row_id: int, claimant: str) -> int:
    """One more attempt; renews the lease, so a slow retry is not taken for a dead run."""
    with db.session_scope(url) as s:
        row = s.get_one(db.OutgoingMessage, row_id)
        _note_attempt(row, claimant, db.utcnow())
        return row.attempts


def _note_attempt(row: db.OutgoingMessage, claimant: str, now: datetime) -> None:
    row.attempts += 1
    row.claimed_at = now
    row.claimed_by = claimant
    if row.first_attempt_at is None:
        row.first_attempt_at = now


def _note_error(url: str | None, row_id: int, claimant: str, reason: str) -> None:
    with db.session_scope(url) as s:
        row = s.get_one(db.OutgoingMessage, row_id)
        row.last_error = reason


def _finish(
    url: str | None,
    row_id: int,
    claimant: str,
    state: str,
    *,
    error: str | None = None,
    receipt: str | None = None,
) -> None:
    M = db.OutgoingMessage
    now: datetime = db.utcnow()
    values: dict[str, Any] = {"state": state, "claimed_at": None, "claimed_by": None}
    if state == "sent":
        values |= {"sent_at": now, "receipt": receipt, "last_error": None}
    else:
        values["last_error"] = error
        if state == "failed":
            values["failed_at"] = now
    with db.session_scope(url) as s:
        # only while the lease is ours: a run that lost it must not overwrite the outcome
        s.execute(
            update(M)
            .where(M.id == row_id, M.state == "sending", M.claimed_by == claimant)
            .values(**values)
        )
