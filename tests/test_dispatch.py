"""Dispatch of approved memos against real parts: a real SMTP server (aiosmtpd) on loopback,
SQLite and PostgreSQL, child processes killed with SIGKILL. The crash test covers every
message the outbox sends: invitations, session reminders, feedback notices, memo letters.

The simulated year (load the example, run it with hytetu.phases, approve every memo with
hytetu.memos.decide) is built once per module, with a snapshot on the morning of each day
the crash test kills; each test gets a copy of a SQLite file. The crash test's mail server
is pluggable (``MailServer``): SMTP or the Graph fake.

Run as ``python tests/test_dispatch.py child ...`` this file is the child process of the
crash test: one daily tick (the phases due, as ``hytetu.simulate.run_ticks`` runs them)
that kills itself (SIGKILL) at the point the env var HYTETU_TEST_KILL names.
"""

from __future__ import annotations

import asyncio
import email
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import policy
from pathlib import Path
from typing import Any, Protocol

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope
from conftest import EXAMPLE, add_finding, copy_sqlite, helsinki, on_the_wire, prefect_artifacts
from sqlalchemy import create_engine, select, text

from hytetu import db, memos, migrate, phases
from hytetu.dispatch import dispatch_memos, queue_letters, read_csv
from hytetu.mail import SmtpSettings, SmtpTransport
from hytetu.outbox import MAX_ATTEMPTS, RetryPolicy
from hytetu.ratelimit import RateLimiter
from hytetu.state import cycle_view

pytest_plugins = ["graph_server"]  # the fake Microsoft Graph, for the crash test

ROOT = Path(__file__).resolve().parent.parent
AS_OF = "2025-12-22 07:00"
FAST = {"rate_per_minute": 10000, "lease_seconds": 0}
LETTERS = 21 + 22  # a group memo to each municipality in a group; the summary to all 22
# The morning the crash test kills the tick on for each purpose, and how many messages of
# that purpose the day sends (the memo letters: AS_OF, once every memo is approved).
KILL_DAYS = {
    "invitation": ("2025-10-02 07:00", 16),
    "reminder": ("2025-11-20 07:00", 15),
    "feedback_reminder": ("2025-12-13 07:00", 45),
    "memo": (AS_OF, LETTERS),
}


# --- a real SMTP server on loopback ----------------------------------------------------------


@dataclass
class Received:
    message_id: str
    recipients: list[str]
    raw: bytes
    at: float


class Recorder:
    """aiosmtpd handler: records every accepted message; ``answer`` may refuse or delay."""

    def __init__(
        self,
        answer: Callable[[str, int], str | None] | None = None,
        refuse: dict[str, str] | None = None,
        delay: float = 0.0,
    ) -> None:
        self.answer = answer
        self.refuse = refuse or {}
        self.delay = delay
        self.received: list[Received] = []
        self.tries: Counter[str] = Counter()
        self.lock = threading.Lock()

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        message_id = email.message_from_bytes(raw, policy=policy.default)["Message-ID"]
        with self.lock:
            self.tries[message_id] += 1
            tries = self.tries[message_id]
        reply = self.answer(message_id, tries) if self.answer else None
        if reply:
            return reply
        if self.delay:
            await asyncio.sleep(self.delay)
        with self.lock:
            self.received.append(Received(message_id, list(envelope.rcpt_tos), raw, time.time()))
        return "250 2.0.0 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MailServer(Protocol):
    """A mail server the crash test can send to: SMTP now, the Graph fake later."""

    def mail_settings(self) -> dict[str, Any]: ...
    def received(self) -> list[Received]: ...


class SmtpServer:
    def __init__(self, handler: Recorder) -> None:
        self.handler = handler
        self.port = _free_port()
        self.controller = Controller(handler, hostname="127.0.0.1", port=self.port)

    def mail_settings(self) -> dict[str, Any]:
        return {
            "transport": "smtp",
            "smtp": {"host": "127.0.0.1", "port": self.port, "security": "none", "timeout": 10},
        }

    def transport(self) -> SmtpTransport:
        return SmtpTransport(SmtpSettings.model_validate(self.mail_settings()["smtp"]))

    def received(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)


class GraphMail:
    """The fake Microsoft Graph (tests/graph_server.py) seen as a ``MailServer``."""

    def __init__(self, server: Any) -> None:
        self.server = server

    def mail_settings(self) -> dict[str, Any]:
        return {"transport": "graph", "graph": self.server.settings().model_dump(mode="json")}

    def received(self) -> list[Received]:
        out = []
        for raw in list(self.server.sent):
            msg = email.message_from_bytes(raw, policy=policy.default)
            to = [a.addr_spec for h in ("To", "Cc") for a in getattr(msg[h], "addresses", ())]
            out.append(Received(msg["Message-ID"], to, raw, 0.0))
        return out


@pytest.fixture
def smtp() -> Iterator[Callable[..., SmtpServer]]:
    servers: list[SmtpServer] = []

    def start(**options: Any) -> SmtpServer:
        server = SmtpServer(Recorder(**options))
        server.controller.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.controller.stop()


# --- the simulated year, built once --------------------------------------------------------


@pytest.fixture(scope="module")
def year_snapshots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """The example run through the year: a copy of the SQLite file on the morning of each
    day of ``KILL_DAYS`` (before its tick), and at the end with every memo approved."""
    from hytetu.simulate import run_ticks

    base = tmp_path_factory.mktemp("dispatch-year")
    config = base / "config"
    shutil.copytree(EXAMPLE, config)
    url = f"sqlite:///{base / 'hytetu.db'}"
    phases.load(config, url)
    snapshots: dict[str, Path] = {}
    for purpose, (day, _) in KILL_DAYS.items():
        if purpose != "memo":
            run_ticks(url, base / "out", until=helsinki(day) - timedelta(minutes=1))
            copy_sqlite(url, base / f"{purpose}.db")
            snapshots[purpose] = base / f"{purpose}.db"
    run_ticks(url, base / "out")
    with db.session_scope(url) as s:
        view = cycle_view(s)
        for v in memos.latest_versions(view):
            memos.decide(view, v.id, approve=True, actor="testi", at=helsinki("2025-12-21 12:00"))
    db.dispose(url)
    snapshots["memo"] = base / "hytetu.db"
    yield snapshots


@pytest.fixture(scope="module")
def approved_year(year_snapshots: dict[str, Path]) -> Path:
    """The SQLite file of the year with every memo approved."""
    return year_snapshots["memo"]


@pytest.fixture
def year_url(approved_year: Path, tmp_path: Path) -> Iterator[str]:
    copy_sqlite(approved_year, tmp_path / "hytetu.db")
    url = f"sqlite:///{tmp_path / 'hytetu.db'}"
    configure(url, **FAST)
    yield url
    db.dispose(url)


def configure(url: str, mail: dict[str, Any] | None = None, **dispatch: Any) -> None:
    with db.session_scope(url) as s:
        cycle = cycle_view(s).cycle
        settings = dict(cycle.settings)
        settings["dispatch"] = {**settings.get("dispatch", {}), **dispatch}
        if mail is not None:
            settings["mail"] = mail
        cycle.settings = settings


def copy_database(source: str, target: str) -> None:
    """Every row of ``source`` into the empty, migrated ``target`` (PostgreSQL)."""
    migrate.upgrade(target)
    src, dst = create_engine(source), db.get_engine(target)
    with src.connect() as a, dst.begin() as b:
        for table in db.Base.metadata.sorted_tables:
            rows = [dict(r) for r in a.execute(table.select()).mappings()]
            if rows:
                b.execute(table.insert(), rows)
            if dst.dialect.name == "postgresql" and "id" in table.c and rows:
                b.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                        f"(SELECT max(id) FROM {table.name}))"
                    )
                )
    src.dispose()


def expected_letters(url: str) -> dict[str, str]:
    """Message-ID -> registry address of every memo letter queued."""
    with db.session_scope(url) as s:
        return {
            m.message_id: m.recipients[0]
            for m in s.scalars(select(db.OutgoingMessage).filter_by(purpose="memo"))
        }


def states(url: str, purpose: str | None = "memo") -> dict[int, db.OutgoingMessage]:
    """The outbox rows of ``purpose`` (None: every row) by id."""
    query = select(db.OutgoingMessage)
    if purpose is not None:
        query = query.filter_by(purpose=purpose)
    with db.session_scope(url) as s:
        return {m.id: m for m in s.scalars(query)}


def fast_retry(sleeps: list[float] | None = None) -> RetryPolicy:
    return RetryPolicy(
        attempts=4,
        base=0.001,
        cap=0.01,
        sleep=(sleeps.append if sleeps is not None else time.sleep),
    )


def run(url: str, out: Path, transport: Any, **kwargs: Any) -> Any:
    return dispatch_memos(url, helsinki(AS_OF), out, transport=transport, **kwargs)


# --- the crash test ---------------------------------------------------------------------------


def _child(url: str, out: str, as_of: str) -> None:
    """The tick of ``as_of`` (every phase due, in order) that SIGKILLs itself at
    HYTETU_TEST_KILL (mode:n), e.g. ``after_send:7`` (the server took the 7th message, the
    DB does not know yet), ``before_send:7`` (the 7th row is claimed, nothing sent) or
    ``between:7`` (7 sent and recorded, the next not claimed). The phases make their
    transport and deliver as in production; only the transport is wrapped. Prints what the
    run did as JSON when it finishes."""
    from hytetu import dispatch, outbox

    mode, _, n = (os.environ.get("HYTETU_TEST_KILL") or "none:0").partition(":")
    at = int(n)
    sends = 0

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    def killing(make: Callable[..., Any]) -> Callable[..., Any]:
        def make_killing(settings: Any, out_dir: Path) -> Any:
            inner = make(settings, out_dir)

            class Killing:
                name = inner.name

                def send(self, raw: bytes, sender: str, recipients: list[str]) -> Any:
                    nonlocal sends
                    sends += 1
                    if mode == "before_send" and sends == at:
                        die()
                    receipt = inner.send(raw, sender, recipients)
                    if mode == "after_send" and sends == at:
                        die()
                    return receipt

                def was_sent(self, message_id: str, sender: str) -> bool | None:
                    return inner.was_sent(message_id, sender)

            return Killing()

        return make_killing

    claim = outbox._claim

    def claim_or_die(*args: Any) -> Any:
        if mode == "between" and sends == at:
            die()
        return claim(*args)

    reports: list[Any] = []
    deliver = outbox.deliver_pending

    def deliver_and_record(*args: Any, **kwargs: Any) -> Any:
        reports.append(deliver(*args, **kwargs))
        return reports[-1]

    phases.make_transport = killing(phases.make_transport)  # type: ignore[assignment]
    dispatch.make_transport = killing(dispatch.make_transport)  # type: ignore[assignment]
    outbox._claim = claim_or_die  # type: ignore[assignment]
    phases.deliver_pending = dispatch.deliver_pending = deliver_and_record  # type: ignore[assignment]
    moment = helsinki(as_of)
    due = phases.due_phases(moment, url)
    results = [phases.run_phase(phase, moment, Path(out), url) for phase in due]
    print(
        json.dumps(
            {
                "due": due,
                "sent": [i for r in reports for i in r.sent],
                "resent": [i for r in reports for i in r.resent],
                "found_sent": [i for r in reports for i in r.found_sent],
                "failed": [f for r in results for f in r.failed],
                "csv": [f for r in results for f in r.files if f.endswith(".csv")],
            }
        )
    )


def _spawn(url: str, out: Path, kill: str, as_of: str = AS_OF) -> subprocess.Popen[str]:
    env = {**os.environ, "HYTETU_TEST_KILL": kill, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, __file__, "child", url, str(out), as_of],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@dataclass
class CrashRecord:
    kills: list[str] = field(default_factory=list)
    left_sending: list[set[int]] = field(default_factory=list)


@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    ("purpose", "kind", "kills"),
    [
        ("invitation", "smtp", "after_send:1 in_data:2 before_send:3 between:2 observed:3"),
        ("reminder", "smtp", "before_send:1 after_send:2 in_data:3 between:2 observed:2"),
        (
            "feedback_reminder",
            "smtp",
            "between:4 after_send:6 in_data:5 observed:8 before_send:4 after_send:5",
        ),
        (
            "memo",
            "smtp",
            "before_send:1 after_send:1 between:6 in_data:4 observed:5 after_send:9",
        ),
        ("memo", "smtp", "after_send:20 between:8 observed:10"),
        ("memo", "graph", "after_send:3 before_send:5 observed:10"),
    ],
    ids=[
        "invitations",
        "reminders",
        "feedback-notices",
        "memos-smtp",
        "memos-smtp-late-kills",
        "memos-graph",
    ],
)
def test_a_killed_tick_is_finished_by_a_rerun_the_same_day_with_duplicates_only_from_mid_send(
    year_snapshots: dict[str, Path],
    tmp_path: Path,
    request: pytest.FixtureRequest,
    purpose: str,
    kind: str,
    kills: str,
) -> None:
    """The tick of the day is killed at each point in turn, then run once more the same
    day. The default lease (ten minutes) holds throughout: each run takes over at once what
    the dead one left, because that process is gone."""
    day, count = KILL_DAYS[purpose]
    url = copy_sqlite(year_snapshots[purpose], tmp_path / "hytetu.db")
    phase = next(p for p, sent in phases.DELIVERS.items() if purpose in sent)
    in_data = InData()
    server: MailServer
    if kind == "graph":  # Sent Items tells what went out: no duplicates at all
        server = GraphMail(request.getfixturevalue("graph_server"))
    else:  # SMTP cannot tell: what a kill caught mid-send goes again, same Message-ID
        server = request.getfixturevalue("smtp")(delay=0.005, answer=in_data.answer)
    configure(url, mail=server.mail_settings(), rate_per_minute=10000, lease_seconds=600)
    sent_before = {i for i, m in states(url, None).items() if m.state == "sent"}
    out = tmp_path / "out"
    record = CrashRecord()
    for kill in kills.split():
        mode, _, n = kill.partition(":")
        if mode in ("observed", "in_data"):  # killed from outside, by the server's count
            before = len(server.received())
            child = _spawn(url, out, "none:0", day)
            if mode == "in_data":  # inside the n-th DATA of this run, before its reply
                in_data.arm(child, n=int(n))
            target = before + int(n)
            deadline = time.monotonic() + 60
            while child.poll() is None and (
                in_data.armed() if mode == "in_data" else len(server.received()) < target
            ):
                assert time.monotonic() < deadline, "the child made no progress"
                time.sleep(0.001)
            child.send_signal(signal.SIGKILL)
        else:
            child = _spawn(url, out, kill, day)
        _, stderr = child.communicate(timeout=120)
        assert child.returncode == -signal.SIGKILL, f"{kill}: {stderr[-2000:]}"
        record.kills.append(kill)
        left = {i for i, m in states(url, None).items() if m.state == "sending"}
        record.left_sending.append(left)
        # a re-run the same day sees the work: what is pending, and what the dead run left
        assert phase in phases.due_phases(helsinki(day), url), kill
        db.dispose(url)

    final = _spawn(url, out, "none:0", day)
    stdout, stderr = final.communicate(timeout=120)
    assert final.returncode == 0, stderr[-3000:]
    report = json.loads(stdout.strip().splitlines()[-1])
    assert report["failed"] == []
    assert report["due"] and phase in report["due"]
    assert phases.due_phases(helsinki(day), url) == []  # the job is done

    rows = {i: m for i, m in states(url, None).items() if i not in sent_before}
    expected = {m.message_id: m.recipients for m in rows.values()}
    assert len(expected) == count and {m.purpose for m in rows.values()} == {purpose}
    received = server.received()
    counts = Counter(r.message_id for r in received)
    # nothing lost: every message reached its recipients
    assert set(counts) == set(expected)
    for r in received:
        assert r.recipients == expected[r.message_id]
    assert all(m.state == "sent" for m in rows.values())
    # duplicates only for messages caught mid-send, one per kill at most, same bytes
    duplicated = {mid for mid, n in counts.items() if n > 1}
    assert all(n <= 2 for n in counts.values())
    assert len(duplicated) <= len(record.kills)
    by_mid = {m.message_id: m for m in rows.values()}
    caught = {rows[i].message_id for left in record.left_sending for i in left}
    assert duplicated <= caught  # only messages a kill left in "sending"
    for mid in duplicated:
        copies = {r.raw for r in received if r.message_id == mid}
        assert len(copies) == 1  # the same message, Message-ID and all: receivers can drop it
        assert by_mid[mid].recovered >= 1  # it was taken over from a dead run
    after_send = [k for k in record.kills if k.startswith("after_send:")]
    if kind == "graph":
        assert duplicated == set()
    else:  # each after_send kill was caught between the server's 250 and the DB
        assert len(duplicated) >= len(after_send)
    # the last run's report says what it took over: exactly those the last kill left sending
    assert set(report["resent"]) | set(report["found_sent"]) == record.left_sending[-1]
    if purpose == "memo":
        (csv_path,) = report["csv"]
        csv_rows = read_csv(Path(csv_path))
        marked = {int(r["row_id"]) for r in csv_rows if r["this_run"] in ("re-sent", "found sent")}
        assert marked == record.left_sending[-1]
    print(
        f"crash test {purpose} over {kind} {kills}: {len(expected)} messages, "
        f"{len(received)} received, 0 lost, {len(duplicated)} duplicate(s), "
        f"left sending per kill {record.left_sending}"
    )


class InData:
    """Kills a child from inside the SMTP server's DATA handler, before the server replies:
    the message never counts as accepted (a 451 to a dead client), the row stays sending."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.child: subprocess.Popen[str] | None = None
        self.left = 0

    def arm(self, child: subprocess.Popen[str], n: int) -> None:
        with self.lock:
            self.child, self.left = child, n

    def armed(self) -> bool:
        with self.lock:
            return self.child is not None

    def answer(self, message_id: str, tries: int) -> str | None:
        with self.lock:
            if self.child is None:
                return None
            self.left -= 1
            if self.left > 0:
                return None
            self.child.send_signal(signal.SIGKILL)
            self.child.wait()
            self.child = None
        return "451 4.3.0 the client went away"


# --- faults ------------------------------------------------------------------------------------


def test_temporary_errors_retry_and_a_550_is_reported_without_endless_retry(
    year_url: str, tmp_path: Path, smtp: Callable[..., SmtpServer]
) -> None:
    expected = None

    def answer(message_id: str, tries: int) -> str | None:
        # a deterministic share: every third message greylisted once, every fifth 421 twice
        n = int(hashlib.sha256(message_id.encode()).hexdigest(), 16)
        if n % 3 == 0 and tries == 1:
            return "451 4.7.1 Greylisted, try again later"
        if n % 5 == 0 and tries <= 2:
            return "421 4.3.2 Service busy, closing transmission channel"
        return None

    server = smtp(answer=answer, refuse={"kirjaamo@jamsa.example": "550 5.1.1 User unknown"})
    sleeps: list[float] = []
    result = run(year_url, tmp_path / "out", server.transport(), retry=fast_retry(sleeps))
    expected = expected_letters(year_url)
    counts = Counter(r.message_id for r in server.received())
    jamsa = {mid for mid, to in expected.items() if to == "kirjaamo@jamsa.example"}
    assert len(jamsa) == 2  # its group's memo and the summary
    assert set(counts) == set(expected) - jamsa and set(counts.values()) == {1}
    rows = states(year_url)
    by_mid = {m.message_id: m for m in rows.values()}
    for mid in jamsa:
        row = by_mid[mid]
        assert row.state == "failed" and row.attempts == 1 and row.failed_at is not None
        assert "550" in (row.last_error or "")
    retried = [mid for mid in counts if server.handler.tries[mid] > 1]
    assert retried, "the server's temporary errors were never hit"
    for mid in retried:
        assert by_mid[mid].attempts == server.handler.tries[mid] <= 3
    assert (
        result.delivery.retries == len(sleeps) == sum(server.handler.tries[m] - 1 for m in retried)
    )
    failures = result.failures()
    assert len(failures) == 2 and all(
        f.startswith("kirjaamo@jamsa.example") and "550" in f for f in failures
    )
    # a second run does not retry the permanent failure
    again = run(year_url, tmp_path / "out", server.transport(), retry=fast_retry())
    assert again.delivery.sent == [] and again.delivery.failed == []
    assert all(server.handler.tries[mid] == 0 for mid in jamsa)  # refused at RCPT, never DATA


def test_a_server_that_never_recovers_is_given_up_after_max_attempts(
    year_url: str, tmp_path: Path, smtp: Callable[..., SmtpServer]
) -> None:
    server = smtp(answer=lambda mid, tries: "451 4.3.0 Temporary failure")
    first = run(year_url, tmp_path / "out", server.transport(), retry=fast_retry())
    assert first.delivery.sent == [] and len(first.delivery.retry_later) == LETTERS
    assert all(m.state == "pending" and m.attempts == 4 for m in states(year_url).values())
    second = run(year_url, tmp_path / "out", server.transport(), retry=fast_retry())
    assert len(second.delivery.failed) == LETTERS
    assert all(m.attempts == MAX_ATTEMPTS for m in states(year_url).values())
    assert sum(server.handler.tries.values()) == LETTERS * MAX_ATTEMPTS
    assert run(year_url, tmp_path / "out", server.transport()).delivery.failed == []


# --- two runs at once ---------------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_two_dispatch_runs_at_once_send_each_letter_once(
    approved_year: Path, db_url: str, tmp_path: Path, smtp: Callable[..., SmtpServer]
) -> None:
    if db_url.startswith("sqlite"):
        copy_sqlite(approved_year, Path(db_url.removeprefix("sqlite:///")))
    else:
        copy_database(f"sqlite:///{approved_year}", db_url)
    configure(db_url, rate_per_minute=10000)  # the default lease: runs are alive
    server = smtp(delay=0.005)
    barrier = threading.Barrier(2)
    results: list[Any] = []
    errors: list[BaseException] = []

    def one(n: int) -> None:
        try:
            barrier.wait()
            results.append(run(db_url, tmp_path / f"out{n}", server.transport()))
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    expected = expected_letters(db_url)
    assert len(expected) == LETTERS
    counts = Counter(r.message_id for r in server.received())
    assert counts == Counter(set(expected))  # each letter exactly once
    sent = sorted(i for r in results for i in r.delivery.sent)
    assert sent == sorted(states(db_url))
    assert all(m.state == "sent" and m.attempts == 1 for m in states(db_url).values())
    assert sum(r.plan.queued for r in results) == LETTERS  # one row per letter, whoever made it


# --- the rate limit ----------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_rate_limit_holds_for_two_limiters_sharing_one_database(db_url: str) -> None:
    migrate.upgrade(db_url)
    limit, window, takes = 5, 0.3, 16
    limiters = [
        RateLimiter(db_url, "hyte@hyvaks.example", limit=limit, window=window, run=f"r{n}")
        for n in range(2)
    ]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def one(limiter: RateLimiter) -> None:
        try:
            barrier.wait()
            for _ in range(takes):
                limiter.take()
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=one, args=(lim,)) for lim in limiters]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with db.session_scope(db_url) as s:
        slots = sorted(s.execute(select(db.SendSlot.at, db.SendSlot.run)).all())
    assert Counter(run for _, run in slots) == {"r0": takes, "r1": takes}
    per_window = _per_window([at for at, _ in slots], window)
    assert max(per_window) == limit  # full windows, never more
    assert all(limiter.waited > 0 for limiter in limiters)  # both were held back


def _per_window(times: list[datetime], window: float) -> list[int]:
    """For each send, how many sends fall in the window that starts with it."""
    span = timedelta(seconds=window)
    return [sum(1 for t in times if start <= t < start + span) for start in times]


@pytest.mark.timeout(120)
def test_rate_limit_holds_across_two_dispatch_runs(
    year_url: str, tmp_path: Path, smtp: Callable[..., SmtpServer]
) -> None:
    limit, window = 4, 0.5
    configure(year_url, lease_seconds=600)  # both runs are alive: neither takes the other's
    server = smtp()
    limiters: list[RateLimiter] = []
    results: list[Any] = []
    barrier = threading.Barrier(2)

    def one(n: int) -> None:
        limiter = RateLimiter(year_url, "hyte@hyvaks.example", limit=limit, window=window)
        limiters.append(limiter)
        barrier.wait()
        results.append(run(year_url, tmp_path / f"out{n}", server.transport(), limiter=limiter))

    threads = [threading.Thread(target=one, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(len(r.delivery.sent) for r in results) == LETTERS
    assert len(server.received()) == LETTERS
    with db.session_scope(year_url) as s:
        slots = sorted(s.scalars(select(db.SendSlot.at)))
    assert len(slots) >= LETTERS
    assert max(_per_window(slots, window)) <= limit
    assert sum(limiter.waited for limiter in limiters) > 0  # the limit did hold them back


# --- what is sent, and the proof ---------------------------------------------------------------


def test_letters_report_and_status(year_url: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from hytetu.cli import app

    configure(year_url, cc_contacts=True)
    out = tmp_path / "out"
    report = phases.run_dispatch(helsinki(AS_OF), out, year_url)  # the file outbox
    assert report.sent == LETTERS and report.failed == []
    (csv_file,) = (out / "reports").glob("dispatch-2025-*.csv")
    assert report.files == [str(csv_file)]
    rows = read_csv(csv_file)
    assert len(rows) == LETTERS and {r["state"] for r in rows} == {"sent"}
    with db.session_scope(year_url) as s:
        versions = list(s.scalars(select(db.MemoVersion)))
        pdfs = {v.filename: v.pdf for v in versions}
        pdfs |= {v.annex_filename: v.annex_pdf for v in versions if v.annex_filename}
        annexes = {v.filename: v.annex_filename for v in versions if v.annex_filename}
    assert len(annexes) == 6  # every group memo has its feedback annex; the summary none
    emls = {}
    for path in (out / "outbox").glob("*.eml"):
        msg = on_the_wire(path.read_bytes())  # 7-bit, strict parse, no empty encoded word
        # the registry's automatic receipt is wanted, also when its coordinators are in cc
        assert msg["Auto-Submitted"] is None and msg["X-Auto-Response-Suppress"] is None
        emls[msg["Message-ID"]] = msg
    for r in rows:
        attached = dict(a.split("=") for a in r["attachment_sha256"].split("; "))
        expected = [r["document"], *([annexes[r["document"]]] if r["document"] in annexes else [])]
        assert list(attached) == expected
        for name, digest in attached.items():
            assert digest == hashlib.sha256(pdfs[name]).hexdigest()
        msg = emls[r["message_id"]]
        parts = list(msg.iter_attachments())
        assert [p.get_filename() for p in parts] == expected
        assert [p.get_content() for p in parts] == [pdfs[n] for n in expected]
        if len(expected) == 2:
            assert f"Liite: {expected[1]} (PDF/A)" in msg.get_body(("plain",)).get_content()
        assert msg["To"].addresses[0].addr_spec == r["recipient"]
        assert "KSHVA/1234/00.00.01/2025" in msg["Subject"]
        assert r["sent_at"] and r["this_run"] == "sent"
    jamsa = next(r for r in rows if r["municipality"] == "jamsa" and "muistio" in r["document"])
    hyte = ["juha.lehtonen@jamsa.example", "paivi.makela@jamsa.example"]
    assert jamsa["cc"] == ", ".join(hyte)
    msg = emls[jamsa["message_id"]]
    assert "Jämsä, Keuruu, Multia ja Petäjävesi" in msg["Subject"]
    assert [a.addr_spec for a in msg["Cc"].addresses] == hyte

    runner = CliRunner()
    result = runner.invoke(
        app,
        ["dispatch", "status", "--csv", str(tmp_path / "s.csv")],
        env={"HYTETU_DATABASE_URL": year_url},
    )
    assert result.exit_code == 0, result.output
    assert f"sent {LETTERS}" in result.output
    assert jamsa["message_id"] in result.output
    assert len(read_csv(tmp_path / "s.csv")) == LETTERS


def test_the_summary_also_goes_to_stakeholders_when_configured(
    year_url: str, tmp_path: Path
) -> None:
    configure(year_url, summary_to_stakeholders=True)
    with db.session_scope(year_url) as s:
        view = cycle_view(s)
        stakeholders = {c.org_key for c in view.contacts()} - {
            m.key for m in s.scalars(select(db.Municipality))
        }
        addresses: dict[str, list[str]] = {}
        for c in view.contacts():
            addresses.setdefault(c.org_key, []).append(c.email)
    assert stakeholders
    result = run(year_url, tmp_path / "out", None)
    rows = {r["municipality"]: r for r in result.rows}
    assert len(result.delivery.sent) == LETTERS + len(stakeholders)
    for key in stakeholders:
        row = rows[f"stakeholder:{key}"]
        assert row["document"] == "2025-koonti-keski-suomen-hyvinvointialue.pdf"
        assert sorted(row["recipient"].split(", ")) == sorted(addresses[key])
    with db.session_scope(year_url) as s:
        for m in s.scalars(select(db.OutgoingMessage).filter_by(purpose="memo")):
            msg = on_the_wire(m.raw)
            assert msg["Subject"] == m.subject  # decodes to the text the template gave
            to_people = m.dedupe_key.split(":")[2] == "stakeholder"
            assert msg["X-Auto-Response-Suppress"] == ("OOF" if to_people else None)
            assert msg["Auto-Submitted"] is None


def _pdf_sizes(url: str) -> dict[str, tuple[int, int]]:
    """Each approved document's PDF and annex sizes in bytes, by memo key."""
    with db.session_scope(url) as s:
        return {
            v.memo.key: (len(v.pdf), len(v.annex_pdf or b""))
            for v in memos.latest_versions(cycle_view(s))
        }


def test_documents_over_the_attachment_limit_fail_before_sending(
    year_url: str, tmp_path: Path, smtp: Callable[..., SmtpServer]
) -> None:
    sizes = _pdf_sizes(year_url)
    smallest = min(pdf for pdf, _ in sizes.values())
    configure(year_url, max_attachment_mb=(smallest - 1000) / 1024 / 1024)  # every one over
    server = smtp()
    result = run(year_url, tmp_path / "out", server.transport())
    assert len(result.plan.problems) == len(sizes)  # each document, named
    assert any("koonti" in p for p in result.plan.problems)
    assert all(
        "over the limit of" in p and "dispatch.max_attachment_mb" in p for p in result.plan.problems
    )
    assert all(p in result.failures() for p in result.plan.problems)
    assert server.received() == []  # nothing sent


def test_a_memo_that_fits_only_without_its_annex_goes_alone_and_says_so(
    year_url: str, tmp_path: Path, smtp: Callable[..., SmtpServer]
) -> None:
    sizes = _pdf_sizes(year_url)
    largest = max(pdf for pdf, _ in sizes.values())
    with_annex = min(pdf + annex for pdf, annex in sizes.values() if annex)
    assert largest + 1000 < with_annex  # every PDF fits alone, no memo with its annex
    configure(year_url, max_attachment_mb=(largest + 1000) / 1024 / 1024)
    server = smtp()
    result = run(year_url, tmp_path / "out", server.transport())
    assert not result.plan.problems and not result.failures()
    assert len(server.received()) == LETTERS
    # The memo goes alone, and the letter and the run's status say the annex was left out.
    assert len(result.plan.notes) == sum(1 for _, annex in sizes.values() if annex) == 6
    assert all("-liite.pdf" in n and "not attached" in n for n in result.plan.notes)
    memo_letters = 0
    for received in server.received():
        msg = email.message_from_bytes(received.raw, policy=policy.strict)
        names = [p.get_filename() for p in msg.iter_attachments()]
        assert len(names) == 1 and names[0].endswith(".pdf") and "-liite" not in names[0]
        if "koonti" in names[0]:
            continue
        memo_letters += 1
        text = msg.get_body(("plain",)).get_content()
        assert "liian suuri" in text and names[0].replace(".pdf", "-liite.pdf") in text
    assert memo_letters == 21


def test_a_new_approved_version_is_a_new_letter_that_replaces_the_old(
    year_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert phases.run_dispatch(helsinki(AS_OF), out, year_url).sent == LETTERS
    add_finding(
        year_url,
        "2025-10-30-joutsa",
        "Korjaus: kotiturvallisuuskartoitukset kaikille yli 75-vuotiaille",
        999,
    )
    phases.run_compile(year_url)
    phases.run_render(out, year_url)
    with db.session_scope(year_url) as s:
        view = cycle_view(s)
        new = next(v for v in memos.latest_versions(view) if "joutsa" in v.filename)
        assert new.number == 2 and new.status == "draft"
        memos.decide(view, new.id, approve=True, actor="testi")
        old_name = new.memo.versions[0].filename
    report = phases.run_dispatch(helsinki("2026-01-10 07:00"), out, year_url)
    assert report.sent == 3  # Joutsa, Luhanka, Toivakka get the new version
    with db.session_scope(year_url) as s:
        letters = s.scalars(
            select(db.OutgoingMessage).where(db.OutgoingMessage.memo_version_id == new.id)
        ).all()
        assert len(letters) == 3
        for m in letters:
            text_part = email.message_from_bytes(m.raw, policy=policy.default).get_body(("plain",))
            assert f"korvaa aiemmin lähetetyn version ({old_name})" in text_part.get_content()


def test_a_live_runs_lease_is_not_taken_over(year_url: str, tmp_path: Path, smtp: Any) -> None:
    configure(year_url, lease_seconds=600)
    server = smtp()
    with db.session_scope(year_url) as s:
        queue_letters(cycle_view(s), helsinki(AS_OF))
        first = s.scalars(select(db.OutgoingMessage).filter_by(purpose="memo")).first()
        first.state, first.claimed_at, first.claimed_by = "sending", db.utcnow(), "muu:1:elossa"
        live_id = first.id
    result = run(year_url, tmp_path / "out", server.transport())
    assert live_id not in result.delivery.sent and result.delivery.recovered == []
    assert len(server.received()) == LETTERS - 1
    assert states(year_url)[live_id].state == "sending"


@pytest.mark.prefect
def test_the_flow_leaves_a_table_of_every_letter(
    prefect_api: None, year_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.dispatch import dispatch_memos as flow

    monkeypatch.setenv("HYTETU_DATABASE_URL", year_url)
    state = flow(as_of=helsinki(AS_OF), out_dir=str(tmp_path / "out"), return_state=True)
    assert state.is_completed()

    artifacts = prefect_artifacts([state.state_details.flow_run_id])
    (letters,) = [a for a in artifacts if a.key == "dispatch-letters"]
    table = json.loads(letters.data) if isinstance(letters.data, str) else letters.data
    assert len(table) == LETTERS
    assert {row["state"] for row in table} == {"sent"}
    assert all(row["attachment_sha256"] and row["message_id"] for row in table)
    assert any(a.type == "markdown" and "Lähetys kirjaamoihin" in a.data for a in artifacts)


def test_the_dispatch_block_of_cycle_yaml_is_validated_and_loaded(
    example: Path, sqlite_url: str
) -> None:
    from hytetu.config import load_config
    from hytetu.errors import ConfigError

    cycle_yaml = example / "cycle.yaml"
    original = cycle_yaml.read_text(encoding="utf-8")
    cycle_yaml.write_text(
        original + "\ndispatch:\n  cc_contacts: true\n  rate_per_minute: 12\n", encoding="utf-8"
    )
    phases.load(example, sqlite_url)
    with db.session_scope(sqlite_url) as s:
        settings = cycle_view(s).cycle.settings["dispatch"]
    assert settings["cc_contacts"] is True and settings["rate_per_minute"] == 12
    assert settings["max_attachment_mb"] == 20 and settings["summary_to_stakeholders"] is False
    cycle_yaml.write_text(original + "\ndispatch:\n  rate_per_minuutti: 12\n", encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config(example)
    (problem,) = raised.value.problems
    assert problem.file.endswith("cycle.yaml") and problem.line is not None
    assert "rate_per_minuutti" in problem.field and "unknown field" in problem.message


if __name__ == "__main__" and sys.argv[1:2] == ["child"]:
    _child(sys.argv[2], sys.argv[3], sys.argv[4])
