"""Benchmark: classify and store 1,000 mailbox messages through the FolderReader.

The example year is run (invitations, notes, compilation, memos approved and dispatched
through the file outbox), then the inbox is filled with a mix like a county's after a
cycle: RSVPs from Outlook, Google and Thunderbird to every session, out-of-office
replies, people's own replies, bounces and delay reports of the registry letters and the
registries' receipts (the samples of tests/data/mail, filled). Only ``read_mailbox`` is
timed: parse, classify, match, store one transaction each, move to handled/.

    python bench/mailbox.py [--messages 1000] [--database postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from hytetu import db, memos, phases  # noqa: E402
from hytetu.inbox import FolderReader  # noqa: E402
from hytetu.mailbox import read_mailbox  # noqa: E402
from hytetu.simulate import fill_sample, invitation_values, letter_values, run_ticks  # noqa: E402
from hytetu.state import cycle_view  # noqa: E402

TZ = ZoneInfo("Europe/Helsinki")
#: (share of the mailbox, templates): a county's mailbox after the invitations and dispatch.
MIX = [
    (
        0.45,
        [
            "rsvp-outlook-accept.eml",
            "rsvp-outlook-decline-fi.eml",
            "rsvp-google-tentative.eml",
            "rsvp-thunderbird-accept.eml",
        ],
    ),
    (0.15, ["ooo-outlook-fi.eml", "ooo-sv-franvaro.eml"]),
    (0.10, ["other-human-reply.eml"]),
    (
        0.10,
        [
            "bounce-postfix.eml",
            "bounce-gmail.eml",
            "bounce-exchange-ndr.eml",
            "delayed-postfix.eml",
        ],
    ),
    (
        0.20,
        [
            "receipt-kirjaamo-fi.eml",
            "receipt-kirjaamo-asianumero.eml",
            "receipt-kirjaamo-dnro.eml",
            "receipt-registratur-sv.eml",
        ],
    ),
]
PARTSTAT = {
    "rsvp-outlook-accept.eml": "ACCEPTED",
    "rsvp-outlook-decline-fi.eml": "DECLINED",
    "rsvp-google-tentative.eml": "TENTATIVE",
    "rsvp-thunderbird-accept.eml": "ACCEPTED",
}


def build_year(base: Path, url: str) -> None:
    shutil.copytree(ROOT / "config" / "examples" / "keski-suomi-2025", base / "config")
    phases.load(base / "config", url)
    run_ticks(url, base / "out")
    with db.session_scope(url) as s:
        view = cycle_view(s)
        for v in memos.latest_versions(view):
            memos.decide(view, v.id, approve=True, actor="bench", at=datetime.now(TZ))
    phases.run_phase("dispatch", datetime(2025, 12, 22, 7, tzinfo=TZ), base / "out", url)


def fill_inbox(url: str, inbox: Path, n: int) -> Counter[str]:
    inbox.mkdir(parents=True, exist_ok=True)
    made: Counter[str] = Counter()
    at = datetime(2025, 10, 2, 8, tzinfo=TZ)
    with db.session_scope(url) as s:
        view = cycle_view(s)
        M = db.OutgoingMessage
        invitations = [
            (m.dedupe_key.split(":")[2], m.dedupe_key.split(":")[3])
            for m in s.scalars(select(M).filter_by(purpose="invitation").order_by(M.id))
        ]
        letters = [m.id for m in s.scalars(select(M).filter_by(purpose="memo").order_by(M.id))]
        people = itertools.cycle(invitations)
        to_registries = itertools.cycle(letters)
        i = 0
        for share, templates in MIX:
            for j in range(round(n * share)):
                name = templates[j % len(templates)]
                when = at + timedelta(minutes=i)
                if name.startswith(("rsvp", "ooo", "other")):
                    session_key, address = next(people)
                    values = invitation_values(
                        view, session_key, address, PARTSTAT.get(name, "ACCEPTED"), when
                    )
                else:
                    values = letter_values(view, next(to_registries), when, f"BENCH/{i}/2026")
                (inbox / f"{i:05d}-{name}").write_bytes(fill_sample(name, values))
                made[name.split("-")[0]] += 1
                i += 1
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--database", help="a database URL (default: a new SQLite file)")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="hytetu-bench-mailbox-"))
    url = args.database or f"sqlite:///{base / 'hytetu.db'}"
    started = time.perf_counter()
    build_year(base, url)
    made = fill_inbox(url, base / "inbox", args.messages)
    prepared = time.perf_counter() - started
    with db.session_scope(url) as s:
        region_id = cycle_view(s).region.id
    reader = FolderReader(base / "inbox")
    t0 = time.perf_counter()
    report = read_mailbox(url, reader, region_id)
    took = time.perf_counter() - t0
    t1 = time.perf_counter()
    again = read_mailbox(url, FolderReader(base / "inbox"), region_id)
    rerun = time.perf_counter() - t1
    backend = url.split(":", 1)[0]
    print(f"prepared the year and {sum(made.values())} messages in {prepared:.1f} s: {dict(made)}")
    print(
        f"read_mailbox ({backend}): {report.read} messages in {took:.2f} s "
        f"= {took / max(report.read, 1) * 1000:.1f} ms a message, "
        f"{took / max(report.read, 1) * 1000:.2f} s per 1,000"
    )
    print(f"  kinds: {dict(report.counts)}; errors: {len(report.errors)}")
    print(f"re-run: {again.read} handled, {again.skipped} skipped (left), in {rerun:.2f} s")
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
