"""The outbox on a real (SQLite) database: enqueue once, send once, retry, recover.

The database is made by the migrations (``hytetu.migrate.upgrade``), as in production.
"""

from __future__ import annotations

import email
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email import policy
from pathlib import Path

import pytest
from sqlalchemy import select, update

from hytetu import db, migrate
from hytetu.errors import DeliveryError
from hytetu.mail import FileOutbox, Receipt, build_message, message_id_for
from hytetu.outbox import (
    MAX_ATTEMPTS,
    DeliveryReport,
    deliver_pending,
    enqueue,
    holder_is_gone,
    purposes_due,
    run_id,
)

SENDER = ("Keski-Suomen hyvinvointialue", "hyte@hyvaks.example")


@dataclass
class Setup:
    url: str
    cycle_id: int
    other_cycle_id: int


@pytest.fixture
def setup(sqlite_url: str) -> Setup:
    return make_setup(sqlite_url)


@pytest.fixture
def both_setup(db_url: str) -> Setup:
    """The same, once on SQLite and once on PostgreSQL."""
    return make_setup(db_url)


def make_setup(url: str) -> Setup:
    migrate.upgrade(url)
    with db.session_scope(url) as s:
        region = db.Region(
            key="keski-suomi",
            name={"fi": "Keski-Suomen hyvinvointialue", "sv": "Mellersta Finlands välfärdsområde"},
            timezone="Europe/Helsinki",
            languages=["fi", "sv"],
            sender_name=SENDER[0],
            sender_email=SENDER[1],
        )
        cycles = [
            db.Cycle(
                region=region,
                year=year,
                title={"fi": f"Hyte-neuvottelut {year}"},
                config_folder="/config/keski-suomi",
                feedback_opens=date(year, 9, 1),
                feedback_deadline=date(year, 9, 30),
            )
            for year in (2025, 2026)
        ]
        s.add_all(cycles)
        s.flush()
        return Setup(url, cycles[0].id, cycles[1].id)


def add(
    setup: Setup,
    key: str,
    to: str = "orjan@jamsa.example",
    *,
    purpose: str = "invitation",
    cycle_id: int | None = None,
    builds: list[str] | None = None,
) -> tuple[int, bool]:
    """Enqueue one message (one transaction, as the flows do); returns (row id, created)."""

    def build(message_id: str):
        if builds is not None:
            builds.append(message_id)
        return build_message(
            sender=SENDER,
            to=[("Örjan Äijälä", to)],
            cc=[("Kirjaamo", "kirjaamo@jamsa.example")],
            subject=f"Kutsu: Jämsä {key}",
            text=f"Hei,\n\nviesti {key}.\n",
            message_id=message_id,
            date=datetime(2025, 9, 1, 9, 0, tzinfo=UTC),
            purpose="registry_letter",
        )

    with db.session_scope(setup.url) as s:
        row, created = enqueue(
            s,
            cycle_id=cycle_id or setup.cycle_id,
            dedupe_key=key,
            purpose=purpose,
            sender_email=SENDER[1],
            build=build,
        )
        return row.id, created


def rows(setup: Setup) -> dict[int, db.OutgoingMessage]:
    with db.session_scope(setup.url) as s:
        return {r.id: r for r in s.scalars(select(db.OutgoingMessage))}


def deliver(setup: Setup, transport: object, **kwargs: object) -> DeliveryReport:
    return deliver_pending(
        setup.url,
        transport,  # type: ignore[arg-type]
        cycle_id=setup.cycle_id,
        sender_email=SENDER[1],
        **kwargs,  # type: ignore[arg-type]
    )


class Recording:
    """A transport that records every call, and can fail or crash on chosen messages."""

    name = "recording"

    def __init__(
        self,
        fail: Callable[[str, int], DeliveryError | None] | None = None,
        delay: float = 0.0,
    ) -> None:
        self.fail = fail
        self.delay = delay
        self.calls: list[tuple[str, bytes, str, list[str]]] = []
        self.lock = threading.Lock()

    def send(self, raw: bytes, sender: str, recipients: list[str]) -> Receipt:
        message_id = email.message_from_bytes(raw, policy=policy.default)["Message-ID"]
        with self.lock:
            self.calls.append((message_id, raw, sender, recipients))
            attempt = sum(1 for c in self.calls if c[0] == message_id)
        if self.delay:
            time.sleep(self.delay)
        error = self.fail(message_id, attempt) if self.fail else None
        if error is not None:
            raise error
        return Receipt(self.name, f"ok {message_id}")

    def was_sent(self, message_id: str, sender: str) -> bool | None:
        return None  # like SMTP: cannot tell

    def ids(self) -> list[str]:
        return [c[0] for c in self.calls]


class Crash(BaseException):
    """The process dies mid-send (a kill, a power cut): nothing after it runs."""


# --- enqueue -------------------------------------------------------------------------


def test_enqueue_twice_with_the_same_key_creates_one_row(setup: Setup) -> None:
    builds: list[str] = []
    first_id, created = add(setup, "invite:jamsa:orjan:0:REQUEST", builds=builds)
    again_id, created_again = add(setup, "invite:jamsa:orjan:0:REQUEST", builds=builds)
    assert created is True and created_again is False
    assert again_id == first_id
    assert len(builds) == 1  # the second enqueue does not even build the message
    (row,) = rows(setup).values()
    assert row.state == "pending" and row.attempts == 0
    assert row.message_id == message_id_for("invite:jamsa:orjan:0:REQUEST", SENDER[1])
    assert row.recipients == ["orjan@jamsa.example", "kirjaamo@jamsa.example"]
    assert row.subject == "Kutsu: Jämsä invite:jamsa:orjan:0:REQUEST"
    parsed = email.message_from_bytes(row.raw, policy=policy.default)
    assert parsed["Message-ID"] == row.message_id


@pytest.mark.timeout(60)
def test_two_enqueues_of_one_key_at_the_same_moment_make_one_row(both_setup: Setup) -> None:
    """B enqueues and commits between A's check and A's insert: A gets B's row, no error."""
    setup = both_setup
    b_committed = threading.Event()
    results: dict[str, tuple[int, bool]] = {}
    errors: list[BaseException] = []

    def a() -> None:
        def build(message_id: str):
            b_thread.start()
            assert b_committed.wait(20)
            return build_message(
                sender=SENDER,
                to=[("Kirjaamo", "kirjaamo@jamsa.example")],
                subject="Muistio",
                text="A",
                message_id=message_id,
                date=datetime(2025, 9, 1, tzinfo=UTC),
                purpose="registry_letter",
            )

        try:
            with db.session_scope(setup.url) as s:
                row, created = enqueue(
                    s,
                    cycle_id=setup.cycle_id,
                    dedupe_key="memo:1:jamsa",
                    purpose="memo",
                    sender_email=SENDER[1],
                    build=build,
                )
                results["a"] = (row.id, created)
        except BaseException as e:  # reported below
            errors.append(e)

    def b() -> None:
        try:
            results["b"] = add(setup, "memo:1:jamsa", to="kirjaamo@jamsa.example", purpose="memo")
        finally:
            b_committed.set()

    b_thread = threading.Thread(target=b)
    a_thread = threading.Thread(target=a)
    a_thread.start()
    a_thread.join()
    b_thread.join()
    assert errors == []
    assert results["b"][1] is True and results["a"] == (results["b"][0], False)
    (row,) = rows(setup).values()
    assert row.subject == "Kutsu: Jämsä memo:1:jamsa"  # B's message, not A's


def test_different_keys_are_different_messages(setup: Setup) -> None:
    a, _ = add(setup, "invite:jamsa:orjan:0:REQUEST")
    b, _ = add(setup, "invite:jamsa:orjan:1:REQUEST")
    stored = rows(setup)
    assert a != b
    assert stored[a].message_id != stored[b].message_id


def test_enqueue_inside_a_failed_transaction_leaves_nothing(setup: Setup) -> None:
    with pytest.raises(RuntimeError), db.session_scope(setup.url) as s:
        enqueue(
            s,
            cycle_id=setup.cycle_id,
            dedupe_key="memo:jamsa:1",
            purpose="memo",
            sender_email=SENDER[1],
            build=lambda mid: build_message(
                sender=SENDER,
                to=[("A", "a@jamsa.example")],
                subject="x",
                text="x",
                message_id=mid,
                date=datetime(2025, 9, 1, tzinfo=UTC),
                purpose="registry_letter",
            ),
        )
        raise RuntimeError("the flow step failed after enqueueing")
    assert rows(setup) == {}


# --- delivery -------------------------------------------------------------------------


def test_each_row_is_sent_once_and_a_second_run_sends_nothing(setup: Setup, tmp_path: Path) -> None:
    ids = [add(setup, f"invite:{i}", to=f"r{i}@jamsa.example")[0] for i in range(3)]
    outbox = FileOutbox(tmp_path / "outbox")

    first = deliver(setup, outbox)
    assert sorted(first.sent) == sorted(ids)
    assert first.failed == first.retry_later == first.recovered == []
    files = sorted((tmp_path / "outbox").glob("*.eml"))
    assert len(files) == 3

    second = deliver(setup, outbox)
    assert second == DeliveryReport()
    assert sorted((tmp_path / "outbox").glob("*.eml")) == files

    stored = rows(setup)
    raws = {f.read_bytes() for f in files}
    for row in stored.values():
        assert row.state == "sent"
        assert row.attempts == 1
        assert row.sent_at is not None and row.sent_at.tzinfo is not None
        assert row.receipt is not None and row.receipt.startswith("file: ")
        assert row.last_error is None
        assert row.raw in raws  # the file is the stored message, byte for byte
        assert Path(row.receipt.removeprefix("file: ")).read_bytes() == row.raw


def test_only_the_cycle_and_purposes_asked_for_are_sent(setup: Setup) -> None:
    invitation, _ = add(setup, "invite:1")
    memo, _ = add(setup, "memo:1", purpose="memo")
    other, _ = add(setup, "invite:next-year", cycle_id=setup.other_cycle_id)
    transport = Recording()

    report = deliver(setup, transport, purposes=["memo"])
    assert report.sent == [memo]
    report = deliver(setup, transport)
    assert report.sent == [invitation]
    stored = rows(setup)
    assert stored[other].state == "pending"
    assert len(transport.calls) == 2


def test_sender_and_recipients_reach_the_transport(setup: Setup) -> None:
    add(setup, "invite:1", to="orjan@jamsa.example")
    transport = Recording()
    deliver(setup, transport)
    ((_, raw, sender, recipients),) = transport.calls
    assert sender == SENDER[1]
    assert recipients == ["orjan@jamsa.example", "kirjaamo@jamsa.example"]
    assert raw == next(iter(rows(setup).values())).raw


# --- failures -------------------------------------------------------------------------


def test_transient_error_leaves_the_row_pending_and_a_later_run_sends_it(setup: Setup) -> None:
    flaky_id, _ = add(setup, "invite:flaky", to="flaky@jamsa.example")
    fine_id, _ = add(setup, "invite:fine", to="fine@jamsa.example")
    flaky_mid = rows(setup)[flaky_id].message_id

    def fail(message_id: str, attempt: int) -> DeliveryError | None:
        if message_id == flaky_mid and attempt == 1:
            return DeliveryError("SMTP 451 4.7.1 greylisted", recipient="flaky@jamsa.example")
        return None

    transport = Recording(fail)
    report = deliver(setup, transport)
    assert report.sent == [fine_id]
    assert report.retry_later == [(flaky_id, "SMTP 451 4.7.1 greylisted")]
    row = rows(setup)[flaky_id]
    assert (row.state, row.attempts) == ("pending", 1)
    assert row.last_error == "SMTP 451 4.7.1 greylisted"
    assert row.sent_at is None

    report = deliver(setup, transport)
    assert report.sent == [flaky_id]
    row = rows(setup)[flaky_id]
    assert (row.state, row.attempts, row.last_error) == ("sent", 2, None)
    assert Counter(transport.ids()) == {flaky_mid: 2, rows(setup)[fine_id].message_id: 1}


def test_transient_errors_give_up_after_max_attempts(setup: Setup) -> None:
    row_id, _ = add(setup, "invite:down")
    transport = Recording(lambda mid, attempt: DeliveryError("SMTP connection failed"))
    for run in range(1, MAX_ATTEMPTS + 1):
        report = deliver(setup, transport)
        row = rows(setup)[row_id]
        assert row.attempts == run
        if run < MAX_ATTEMPTS:
            assert report.retry_later == [(row_id, "SMTP connection failed")]
            assert row.state == "pending"
    assert report.failed == [(row_id, "SMTP connection failed")]
    assert rows(setup)[row_id].state == "failed"
    assert deliver(setup, transport) == DeliveryReport()
    assert len(transport.calls) == MAX_ATTEMPTS


def test_permanent_error_fails_that_row_and_the_others_are_still_sent(setup: Setup) -> None:
    ids = [add(setup, f"invite:{i}", to=f"r{i}@jamsa.example")[0] for i in range(4)]
    bad_id = ids[1]
    bad_mid = rows(setup)[bad_id].message_id

    def fail(message_id: str, attempt: int) -> DeliveryError | None:
        if message_id == bad_mid:
            return DeliveryError(
                "recipients refused: r1@jamsa.example (550 5.1.1 User unknown)",
                recipient="r1@jamsa.example",
                permanent=True,
            )
        return None

    transport = Recording(fail)
    report = deliver(setup, transport)
    assert sorted(report.sent) == sorted(i for i in ids if i != bad_id)
    assert [row_id for row_id, _ in report.failed] == [bad_id]
    assert "550" in report.failed[0][1]
    stored = rows(setup)
    assert stored[bad_id].state == "failed"
    assert stored[bad_id].attempts == 1
    assert "r1@jamsa.example" in (stored[bad_id].last_error or "")
    assert all(stored[i].state == "sent" for i in ids if i != bad_id)

    assert deliver(setup, transport) == DeliveryReport()  # failed is final
    assert Counter(transport.ids())[bad_mid] == 1


def test_file_outbox_that_cannot_write_is_a_temporary_error(setup: Setup, tmp_path: Path) -> None:
    row_id, _ = add(setup, "invite:1")
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the outbox folder should be")
    report = deliver(setup, FileOutbox(blocked))
    assert [r for r, _ in report.retry_later] == [row_id]
    assert rows(setup)[row_id].state == "pending"
    blocked.unlink()
    assert deliver(setup, FileOutbox(blocked)).sent == [row_id]


# --- crash and recovery ----------------------------------------------------------------


def test_row_left_sending_by_a_crash_is_resent_only_once_its_lease_ran_out(setup: Setup) -> None:
    crash_id, _ = add(setup, "invite:crash", to="crash@jamsa.example")
    other_id, _ = add(setup, "invite:other", to="other@jamsa.example")
    crash_mid = rows(setup)[crash_id].message_id

    def crash(message_id: str, attempt: int) -> DeliveryError | None:
        if message_id == crash_mid:
            raise Crash
        return None

    dying = Recording(crash)
    with pytest.raises(Crash):
        deliver(setup, dying)
    assert rows(setup)[crash_id].state == "sending"
    assert rows(setup)[other_id].state == "pending"  # never reached
    (first_raw,) = [raw for mid, raw, _, _ in dying.calls if mid == crash_mid]

    # the lease is fresh and its holder (this very process) runs: for all this run knows,
    # a live run is sending it right now
    transport = Recording()
    report = deliver(setup, transport)
    assert report.sent == [other_id]
    assert report.recovered == []
    assert rows(setup)[crash_id].state == "sending"
    assert crash_mid not in transport.ids()

    report = deliver(setup, transport, lease_seconds=0)
    assert report.sent == [crash_id]
    assert report.recovered == report.resent == [crash_id]
    row = rows(setup)[crash_id]
    assert (row.state, row.attempts) == ("sent", 2)
    ((mid, raw, _, _),) = [c for c in transport.calls if c[0] == crash_mid]
    assert mid == crash_mid == message_id_for("invite:crash", SENDER[1])
    assert raw == first_raw  # the same message, so receivers can drop the duplicate
    assert row.recovered == 1

    assert deliver(setup, transport, lease_seconds=0) == DeliveryReport()


def test_a_row_whose_holder_on_this_machine_is_gone_is_taken_over_at_once(
    setup: Setup,
) -> None:
    """The lease names host, machine and pid: a run on the same machine sees that the
    process is gone and does not wait for the lease; any other holder keeps its lease."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # a pid that ran here and is gone now
    mine = run_id()
    machine = mine.split(":")[0]
    gone = f"{machine}:{child.pid}:0123456789ab"
    holders = {
        "gone": gone,
        "alive": f"{machine}:{os.getppid()}:0123456789ab",  # the pytest runner's parent
        "this process": mine,
        "another machine": f"elsewhere/0000000000:{child.pid}:0123456789ab",
        "old style": f"{machine.split('/')[0]}:{child.pid}:0123456789ab",
    }
    ids = {}
    for name, holder in holders.items():
        ids[name], _ = add(setup, f"invite:{name}")
        with db.session_scope(setup.url) as s:
            s.execute(
                update(db.OutgoingMessage)
                .where(db.OutgoingMessage.id == ids[name])
                .values(state="sending", attempts=1, claimed_at=db.utcnow(), claimed_by=holder)
            )
    assert holder_is_gone(gone) and not holder_is_gone(holders["alive"])
    assert not any(holder_is_gone(h) for h in (mine, None, "", "x", "a:b:c"))
    with db.session_scope(setup.url) as s:
        assert purposes_due(s, setup.cycle_id) == {"invitation"}
    transport = Recording()
    report = deliver(setup, transport)  # the default lease: ten minutes
    assert report.recovered == report.resent == report.sent == [ids["gone"]]
    assert [r.state for r in rows(setup).values()] == ["sent"] + ["sending"] * 4
    with db.session_scope(setup.url) as s:
        assert purposes_due(s, setup.cycle_id) == set()  # the others may be alive
        assert purposes_due(s, setup.cycle_id, lease_seconds=0) == {"invitation"}


def test_recover_asks_the_transport_first_and_does_not_resend_what_it_sent(
    setup: Setup,
) -> None:
    """EWS and Graph can search Sent Items: a letter found there is marked sent, not resent."""
    found_id, _ = add(setup, "invite:found")
    lost_id, _ = add(setup, "invite:lost")
    with db.session_scope(setup.url) as s:
        s.execute(update(db.OutgoingMessage).values(state="sending", attempts=1))
    found_mid = rows(setup)[found_id].message_id

    class SentItems(Recording):
        def was_sent(self, message_id: str, sender: str) -> bool | None:
            return message_id == found_mid

    transport = SentItems()
    report = deliver(setup, transport, lease_seconds=0)
    assert report.recovered == [found_id, lost_id]
    assert report.found_sent == [found_id] and report.resent == [lost_id]
    assert report.sent == [lost_id]
    assert transport.ids() == [rows(setup)[lost_id].message_id]
    assert rows(setup)[found_id].state == "sent"
    assert rows(setup)[found_id].receipt == "recording: found sent"


def test_an_unexpected_error_releases_the_row_and_the_others_go_on(setup: Setup) -> None:
    bad_id, _ = add(setup, "invite:bad")
    good_id, _ = add(setup, "invite:good")
    bad_mid = rows(setup)[bad_id].message_id

    def fail(message_id: str, attempt: int) -> DeliveryError | None:
        if message_id == bad_mid:
            raise ValueError("a bug in a transport")
        return None

    report = deliver(setup, Recording(fail))
    assert report.sent == [good_id]
    assert report.failed == [(bad_id, "unexpected ValueError: a bug in a transport")]
    row = rows(setup)[bad_id]
    assert (row.state, row.attempts, row.claimed_by) == ("pending", 1, None)
    for _ in range(MAX_ATTEMPTS - 1):
        deliver(setup, Recording(fail))
    assert rows(setup)[bad_id].state == "failed"  # bounded, as temporary errors are


def test_recover_after_a_simulated_crash_in_the_database(setup: Setup) -> None:
    row_id, _ = add(setup, "invite:x")
    with db.session_scope(setup.url) as s:
        s.execute(
            update(db.OutgoingMessage)
            .where(db.OutgoingMessage.id == row_id)
            .values(state="sending", attempts=1)
        )
    transport = Recording()
    report = deliver(setup, transport)  # no lease at all: taken over at once
    assert report.recovered == report.sent == [row_id]
    assert transport.ids() == [rows(setup)[row_id].message_id]


# --- concurrency ---------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_two_runs_at_once_send_every_row_exactly_once(setup: Setup) -> None:
    count = 40
    ids = [add(setup, f"invite:{i}", to=f"r{i}@jamsa.example")[0] for i in range(count)]
    transport = Recording(delay=0.01)
    barrier = threading.Barrier(2)
    reports: list[DeliveryReport] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            reports.append(deliver(setup, transport))
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    calls = Counter(transport.ids())
    assert len(calls) == count
    assert set(calls.values()) == {1}, {mid: n for mid, n in calls.items() if n != 1}
    sent = [row_id for report in reports for row_id in report.sent]
    assert sorted(sent) == sorted(ids)  # each row reported by exactly one run
    assert all(r.state == "sent" and r.attempts == 1 for r in rows(setup).values())
    # the barrier makes the runs overlap: both claim rows, racing for the same ones
    assert all(report.sent for report in reports)
