"""The invitations of the example, pushed into a real CalDAV server (Radicale on loopback).

Radicale runs as a subprocess on 127.0.0.1 on a free port, without authentication checks
(auth type none) and with its storage in the test's tmp folder; it stops at the end of the
module. A CalDAV server stores calendar objects, not iTIP messages, so each invite's
calendar goes in without its METHOD, under its UID, as a calendar client files it: a
REQUEST creates or replaces the event, an update (same UID, SEQUENCE + 1) replaces it, a
CANCEL deletes it.
"""

from __future__ import annotations

import email
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from email import policy
from pathlib import Path
from urllib.parse import quote

import httpx
import icalendar
import pytest
import vobject
import yaml
from conftest import HELSINKI, helsinki

from hytetu import phases

USER = "hyte"  # any name: auth type none accepts everyone, rights are owner-only
# 21 days before each of the example's seven sessions: every invitation goes out
INVITATION_DAYS = [
    "2025-10-02",
    "2025-10-09",
    "2025-10-16",
    "2025-10-23",
    "2025-10-30",
    "2025-11-06",
    "2025-11-12",
]
MKCALENDAR = """<?xml version="1.0" encoding="utf-8"?>
<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:set><D:prop>
    <D:displayname>Hyte-neuvottelut 2025 – Jämsä, Äänekoski</D:displayname>
    <C:supported-calendar-component-set><C:comp name="VEVENT"/></C:supported-calendar-component-set>
  </D:prop></D:set>
</C:mkcalendar>"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a Radicale server on 127.0.0.1; stopped when the module's tests end."""
    folder = tmp_path_factory.mktemp("radicale")
    port = _free_port()
    log = (folder / "radicale.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "radicale",
            "--config",
            "",  # no system or user config files
            "--server-hosts",
            f"127.0.0.1:{port}",
            "--auth-type",
            "none",
            "--rights-type",
            "owner_only",
            "--storage-filesystem-folder",
            str(folder / "collections"),
            "--logging-level",
            "warning",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError((folder / "radicale.log").read_text(errors="replace"))
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        log.close()


@pytest.fixture
def calendar(radicale: str) -> Iterator[httpx.Client]:
    """A client whose base URL is a fresh calendar collection of USER."""
    name = f"neuvottelut-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=f"{radicale}/{USER}/{name}/", auth=(USER, "x")) as client:
        made = client.request(
            "MKCALENDAR", "", content=MKCALENDAR.encode(), headers={"Content-Type": "text/xml"}
        )
        assert made.status_code == 201, made.text
        yield client


def _calendar_part(path: Path) -> bytes | None:
    msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    for part in msg.walk():  # the text/calendar alternative, not the .ics attachment
        if part.get_content_type() == "text/calendar" and not part.get_filename():
            return part.get_content().encode("utf-8")
    return None  # a reminder carries no calendar


def _new_invites(out: Path, seen: set[str]) -> list[icalendar.Calendar]:
    found = []
    for path in sorted((out / "outbox").glob("*.eml")):
        if path.name in seen:
            continue
        seen.add(path.name)
        ics = _calendar_part(path)
        if ics is not None:
            found.append(icalendar.Calendar.from_ical(ics))
    return found


def _href(uid: str) -> str:
    return quote(f"{uid}.ics", safe="")


def file_in(client: httpx.Client, invite: icalendar.Calendar) -> httpx.Response:
    """What a calendar client does with an iTIP message: store a REQUEST without its
    METHOD under its UID, delete the object on a CANCEL."""
    method = str(invite["METHOD"])
    uid = str(invite.walk("VEVENT")[0]["UID"])
    if method == "CANCEL":
        return client.delete(_href(uid))
    assert method == "REQUEST"
    stored = icalendar.Calendar.from_ical(invite.to_ical())
    del stored["METHOD"]
    return client.put(
        _href(uid),
        content=stored.to_ical(),
        headers={"Content-Type": "text/calendar; charset=utf-8"},
    )


def fetch(client: httpx.Client, uid: str) -> icalendar.Calendar:
    got = client.get(_href(uid))
    assert got.status_code == 200, got.text
    assert got.headers["content-type"].startswith("text/calendar")
    vobject.readOne(got.text).validate()
    return icalendar.Calendar.from_ical(got.content)


def _start(cal: icalendar.Calendar) -> datetime:
    start = cal.walk("VEVENT")[0].decoded("DTSTART")
    assert isinstance(start, datetime)
    return start.astimezone(HELSINKI)


def test_radicale_accepts_every_invite_of_the_example(
    loaded: str, tmp_path: Path, calendar: httpx.Client
) -> None:
    out, seen = tmp_path / "out", set[str]()
    invites: list[icalendar.Calendar] = []
    for day in INVITATION_DAYS:
        phases.run_invitations(helsinki(f"{day} 07:00"), out, loaded)
        invites += _new_invites(out, seen)
    assert invites and all(str(c["METHOD"]) == "REQUEST" for c in invites)

    statuses: dict[str, list[int]] = {}
    for invite in invites:
        uid = str(invite.walk("VEVENT")[0]["UID"])
        response = file_in(calendar, invite)
        assert response.status_code in (201, 204), response.text
        statuses.setdefault(uid, []).append(response.status_code)
    # every participant's copy of a session is the same event: created once, then replaced
    assert len(statuses) == 7
    for codes in statuses.values():
        assert codes[0] == 201 and set(codes[1:]) <= {204}

    for invite in invites[:: max(1, len(invites) // 10)] + invites[-1:]:
        sent = invite.walk("VEVENT")[0]
        stored = fetch(calendar, str(sent["UID"]))
        assert "METHOD" not in stored
        event = stored.walk("VEVENT")[0]
        assert event["SUMMARY"] == sent["SUMMARY"]
        assert event.decoded("DTSTART") == sent.decoded("DTSTART")
        assert stored.walk("VTIMEZONE")[0]["TZID"] == "Europe/Helsinki"

    # the collection lists the seven sessions, each once
    listing = calendar.request(
        "PROPFIND",
        "",
        headers={"Depth": "1"},
        content=b'<propfind xmlns="DAV:"><allprop/></propfind>',
    )
    assert listing.status_code == 207
    assert listing.text.count(".ics</") == 7


def test_update_replaces_and_cancel_removes_the_event(
    loaded: str, example: Path, tmp_path: Path, calendar: httpx.Client
) -> None:
    out, seen = tmp_path / "out", set[str]()
    phases.run_invitations(helsinki("2025-10-09 07:00"), out, loaded)  # two groups invited
    for invite in _new_invites(out, seen):
        assert file_in(calendar, invite).status_code in (201, 204)
    joutsa_uid = next(
        str(e["UID"])
        for e in icalendar.Calendar.from_ical(
            (out / "calendars" / "2025-kaikki.ics").read_bytes()
        ).walk("VEVENT")
        if str(e["UID"]).endswith("2025-10-30-joutsa@hyvaks.example")
    )
    before = fetch(calendar, joutsa_uid)
    assert before.walk("VEVENT")[0]["SEQUENCE"] == 0
    assert _start(before).hour == 9

    # the Joutsa session moves by an hour: an update with SEQUENCE 1 replaces the event
    cycle = (example / "cycle.yaml").read_text(encoding="utf-8")
    cycle = cycle.replace("2025-10-30T09:00:00+02:00", "2025-10-30T10:00:00+02:00")
    (example / "cycle.yaml").write_text(cycle, encoding="utf-8")
    phases.load(example, loaded)
    phases.run_invitations(helsinki("2025-10-09 08:00"), out, loaded)
    updates = _new_invites(out, seen)
    assert updates
    for invite in updates:
        event = invite.walk("VEVENT")[0]
        assert str(event["UID"]) == joutsa_uid and event["SEQUENCE"] == 1
        assert file_in(calendar, invite).status_code == 204  # replaced, not added
    after = fetch(calendar, joutsa_uid)
    assert after.walk("VEVENT")[0]["SEQUENCE"] == 1
    assert _start(after).hour == 10

    # the session is cancelled: the CANCEL deletes the event
    data = yaml.safe_load((example / "cycle.yaml").read_text(encoding="utf-8"))
    for s in data["sessions"]:
        if s["id"] == "2025-10-30-joutsa":
            s["status"] = "cancelled"
    (example / "cycle.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    phases.load(example, loaded)
    phases.run_invitations(helsinki("2025-10-09 09:00"), out, loaded)
    cancels = _new_invites(out, seen)
    assert cancels and all(str(c["METHOD"]) == "CANCEL" for c in cancels)
    first, *rest = cancels
    assert file_in(calendar, first).status_code in (200, 204)
    for invite in rest:  # the other participants' copies find it gone already
        assert file_in(calendar, invite).status_code == 404
    assert calendar.get(_href(joutsa_uid)).status_code == 404
    # the other session is untouched
    others = [
        str(c.walk("VEVENT")[0]["UID"])
        for c in _new_invites(out, set())
        if not str(c.walk("VEVENT")[0]["UID"]).endswith("joutsa@hyvaks.example")
    ]
    assert others and fetch(calendar, others[0]).walk("VEVENT")[0]["SEQUENCE"] == 0
