"""Injection (issue #11): hostile text from the config, session notes and feedback exports
goes through the real paths (load, import, compile, render, invite, dispatch) and every
output is read back with a real parser: HTML (html.parser, lxml), PDF (pypdf), iCalendar
(icalendar, vobject), e-mail (email, aiosmtpd), CSV (csv), XLSX (openpyxl), file names and
SQL (SQLite and PostgreSQL). Each test names the attack and the protection it checks.
"""

from __future__ import annotations

import ast
import base64
import csv
import email
import http.server
import io
import json
import re
import shutil
import socket
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import icalendar
import lxml.etree
import lxml.html
import pytest
import vobject
import yaml
from conftest import EXAMPLE, ROOT, copy_sqlite, edit, helsinki
from openpyxl import load_workbook
from pypdf import PdfReader
from sqlalchemy import inspect, select
from typer.testing import CliRunner

from hytetu import db, dispatch, memos, notes, phases
from hytetu.calendar import Attendee, CalendarEvent, build_calendar
from hytetu.cli import app
from hytetu.config import load_config
from hytetu.errors import ConfigError, FeedbackImportError, NotesError
from hytetu.feedback_import import import_file
from hytetu.mail import FileOutbox, SmtpSettings, SmtpTransport, build_message, slug
from hytetu.render import TEMPLATES, allowed_resource, html_to_pdf
from hytetu.safe import one_line, plain_text
from hytetu.simulate import run_ticks
from hytetu.state import cycle_view

# --- the payloads -----------------------------------------------------------------------

SCRIPT = '<script>alert("x")</script>'
ATTR = '"><img src=x onerror=alert(1)>'
JINJA = "{{ 7*7 }}"
FILE_IMG = '<img src="file:///etc/passwd">'
HTML_FINDING = f"Kaatumiset {SCRIPT} {ATTR} {JINJA} {FILE_IMG} loppu"
CRLF, LF = "\r\n", "\n"
BCC = "\r\nBcc: victim@evil.example"
SQL = "x'); DROP TABLE finding;--"
WILDCARDS = "100 % _kaikille_ ikääntyneille"
FORMULAS = ['=HYPERLINK("http://evil.example","x")', "@SUM(1)", "+1+1", "-2+3"]

SENDER_NAME = f"Hyvinvointialue{BCC}"
CONTACT_NAME = f"Päivi Mäkelä{BCC} {SCRIPT}"
MULTIA_NAME = f"Multia{BCC} {ATTR}"
MULTIA_REGISTRY = "=1+1@multia.example"  # a valid address that starts like a formula
GROUP_NAME = f"Jämsä ym.{BCC} {SCRIPT} {JINJA}"
REGION_NAME = "../../etc/passwd <b>alue</b>"
SESSION_TITLE = f"Neuvottelu {JINJA}{BCC}; x, y \\ z"
PLACE = "Kokoushuone; Jämsä, \\ x\r\nATTENDEE:mailto:evil@evil.example " + "äö" * 40
FEEDBACK_ORG = f"Yhdistys {ATTR}"
FEEDBACK_TEXT = f"Palaute {SCRIPT} {JINJA} x'); DROP TABLE feedback_response;--"

JAMSA_SESSION = "2025-10-23-jamsa"
GROUP_KEY = "jamsa-keuruu-multia-petajavesi"
CELL = ("arjen-turvallisuus", "ikaantyneet")


def _q(text: str) -> str:
    """``text`` as a YAML double-quoted scalar (escapes CR, LF, quotes, backslashes)."""
    return yaml.safe_dump(text, default_style='"', allow_unicode=True, width=10_000).strip()


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _unspaced(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _hostile_config(folder: Path) -> None:
    """The example with hostile names, titles, notes and a feedback export."""
    r, c = "region.yaml", "cycle.yaml"
    edit(folder, r, "name: {fi: Keski-Suomen hyvinvointialue}", f"name: {{fi: {_q(REGION_NAME)}}}")
    edit(
        folder,
        r,
        'sender: {name: "Keski-Suomen hyvinvointialue, hyvinvointi ja kumppanuus",',
        f"sender: {{name: {_q(SENDER_NAME)},",
    )
    edit(folder, r, "{name: Päivi Mäkelä,", f"{{name: {_q(CONTACT_NAME)},")
    edit(folder, r, "    name: {fi: Multia}", f"    name: {{fi: {_q(MULTIA_NAME)}}}")
    edit(folder, r, "registry: kirjaamo@multia.example", f"registry: {_q(MULTIA_REGISTRY)}")
    edit(
        folder,
        r,
        'name: {fi: "Jämsä, Keuruu, Multia ja Petäjävesi"}',
        f"name: {{fi: {_q(GROUP_NAME)}}}",
    )
    # Only the Jämsä session: one group memo and the summary are rendered, fewer ticks.
    cycle = yaml.safe_load((folder / c).read_text(encoding="utf-8"))
    (session,) = [s for s in cycle["sessions"] if s["id"] == JAMSA_SESSION]
    session |= {"title": SESSION_TITLE, "place": PLACE}
    cycle["sessions"] = [session]
    (folder / c).write_text(yaml.safe_dump(cycle, allow_unicode=True), encoding="utf-8")
    for path in (folder / "notes").iterdir():
        if path.stem != JAMSA_SESSION:
            path.unlink()
    path = folder / "notes" / f"{JAMSA_SESSION}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    cell = next(f for f in data["findings"] if (f["priority_area"], f["service_area"]) == CELL)
    cell["items"] += [HTML_FINDING, SQL, WILDCARDS]
    data["general"].append(f"Yleinen {JINJA} {SCRIPT}")
    data.setdefault("stakeholder_remarks", []).append(f"Järjestö {ATTR}")
    data["attendees"] += [{"organisation": f, "type": "ngo", "count": 1} for f in FORMULAS]
    data["attendees"].append({"organisation": SCRIPT, "type": "ngo", "count": 1})
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    shutil.rmtree(folder / "feedback")
    _feedback_csv(folder / "feedback" / "hostile.csv", FEEDBACK_ORG, FEEDBACK_TEXT)


def _feedback_csv(path: Path, org: str, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter=";")
        w.writerow(
            [
                "Vastausaika",
                "Organisaatio",
                "Vastaajan tyyppi",
                "Kunta tai kuntaryhmä",
                "Painopiste",
                "Palvelualue",
                "Näkemys",
                "Sähköposti",
            ]
        )
        w.writerow(
            [
                "24.10.2025 9:12",
                org,
                "Järjestö",
                "Jämsä",
                "Arjen turvallisuuden edistäminen",
                "Ikääntyneiden palvelut",
                text,
                "palaute@jamsa.example",
            ]
        )
    return path


@dataclass
class Year:
    url: str
    base: Path
    out: Path
    report: Path


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Year]:
    """The example year with every payload in it: loaded, invited, notes and feedback
    imported, compiled, rendered (one group memo and the summary), approved and dispatched
    to the file outbox. Shared by the module, read-only."""
    base = tmp_path_factory.mktemp("hostile")
    shutil.copytree(EXAMPLE, base / "config")
    _hostile_config(base / "config")
    url = f"sqlite:///{base / 'hytetu.db'}"
    out = base / "out"
    phases.load(base / "config", url)
    run_ticks(url, out)
    memos.record_review([], actor="tarkastaja", approve_all=True, url=url)
    result = phases.run_dispatch(helsinki("2025-12-22 07:00"), out, url)
    assert result.sent and not result.failed, result
    yield Year(url, base, out, Path(result.files[0]))
    db.dispose(url)


def _versions(year: Year) -> dict[str, tuple[str, bytes, str]]:
    """memo key -> (html, pdf, filename) of the newest versions."""
    with db.session_scope(year.url) as s:
        return {
            v.memo.key: (v.html, v.pdf, v.filename) for v in memos.latest_versions(cycle_view(s))
        }


def _messages(year: Year) -> list[EmailMessage]:
    files = sorted((year.out / "outbox").glob("*.eml"))
    assert files
    return [email.message_from_bytes(p.read_bytes(), policy=policy.default) for p in files]


def _addresses(msg: EmailMessage, header: str) -> list[str]:
    return [a.addr_spec for a in getattr(msg[header], "addresses", ())]


# --- HTML ------------------------------------------------------------------------------


class _Parsed(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.data: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.data.append(data)

    @property
    def text(self) -> str:
        return _normal("".join(self.data))


CHART = "data:image/svg+xml;base64,"  # hytetu.charts: the indicator charts


def _chart_inert(src: str | None) -> bool:
    """An indicator chart, not a payload's image: an SVG data: URI with nothing in it that
    runs or loads (the municipality names in it are hostile too)."""
    if not src or not src.startswith(CHART):
        return False
    parser = lxml.etree.XMLParser(resolve_entities=False, no_network=True)
    svg = lxml.etree.fromstring(base64.b64decode(src[len(CHART) :]), parser=parser)
    assert not svg.xpath("//*[local-name()='script' or local-name()='foreignObject']")
    assert not svg.xpath("//@*[starts-with(local-name(), 'on')]")
    assert not svg.xpath("//@*[local-name()='href' and not(starts-with(., '#'))]")
    return True


def _assert_inert(html: str) -> str:
    """No element or attribute that the payloads would make; returns the text."""
    parsed = _Parsed(html)
    made = [
        t
        for t, attrs in parsed.tags
        if t in ("script", "iframe", "object")
        or (t == "img" and not _chart_inert(attrs.get("src")))
    ]
    assert not made
    assert not [(t, a) for t, attrs in parsed.tags for a in attrs if a.startswith("on")]
    tree = lxml.html.document_fromstring(html)
    assert tree.xpath("//script | //iframe | //object") == []
    assert all(_chart_inert(img.get("src")) for img in tree.xpath("//img"))
    assert tree.xpath("//@*[starts-with(local-name(), 'on')]") == []
    return parsed.text


def test_memo_html_shows_hostile_text_as_text(hostile: Year) -> None:
    """Attack: <script>, an attribute break-out ("><img onerror=...>), a Jinja expression
    and a file:// image in a finding, a general note, a stakeholder remark, an attendee, a
    feedback answer and its organisation, and in municipality, group and region names.
    Protection: the one Jinja environment autoescapes .html.j2 templates and user text is
    only ever a value, never a template (so {{ 7*7 }} stays literal)."""
    versions = _versions(hostile)
    memo_html = versions[f"memo-{GROUP_KEY}"][0]
    assert CHART in memo_html  # the charts, with the hostile names in them, are checked too
    text = _assert_inert(memo_html)
    for payload in (
        HTML_FINDING,
        f"Yleinen {JINJA} {SCRIPT}",
        f"Järjestö {ATTR}",
        SCRIPT,  # an attendee organisation
        FEEDBACK_TEXT,
        FEEDBACK_ORG,
        _normal(MULTIA_NAME),
        _normal(GROUP_NAME),
    ):
        assert _normal(payload) in text, payload
    summary_text = _assert_inert(versions["summary"][0])
    assert _normal(REGION_NAME) in summary_text and _normal(HTML_FINDING) in summary_text


def test_invitation_html_part_shows_hostile_text_as_text(hostile: Year) -> None:
    """Attack: HTML and a Jinja expression in the session title and a contact's name, into
    the invitation e-mail's HTML part. Protection: autoescape of invitation.html.j2."""
    invitation = next(
        m
        for m in _messages(hostile)
        if _addresses(m, "To") == ["paivi.makela@jamsa.example"]
        and m.get_body(("calendar",)) is not None
    )
    html = invitation.get_body(("html",))
    assert html is not None
    text = _assert_inert(html.get_content())
    assert _normal(SESSION_TITLE) in text and _normal(CONTACT_NAME) in text


# --- PDF ---------------------------------------------------------------------------------


def test_memo_pdf_has_the_payloads_as_literal_text_and_loads_nothing(hostile: Year) -> None:
    """Attack: the same payloads in the PDF, among them <img src="file:///etc/passwd">.
    Protection: escaped HTML, so WeasyPrint sees text, not an image; the title metadata
    carries the hostile group name as a plain string."""
    _, pdf, _ = _versions(hostile)[f"memo-{GROUP_KEY}"]
    reader = PdfReader(io.BytesIO(pdf))
    text = _normal(" ".join(p.extract_text() for p in reader.pages))
    for payload in (SCRIPT, ATTR, JINJA, FILE_IMG, FEEDBACK_TEXT):
        assert payload in text, payload
    assert "root:" not in text
    for page in reader.pages:
        resources = page.get("/Resources") or {}
        xobjects = resources.get("/XObject") or {}
        assert not [x for x in xobjects.values() if x.get_object().get("/Subtype") == "/Image"]
    assert reader.metadata is not None
    assert _normal(reader.metadata.title or "") == _normal(f"Muistio: {GROUP_NAME}")


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802
        _Recorder.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def web_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Recorder.hits = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_pdf_renderer_fetches_nothing_outside_the_templates(web_server: str) -> None:
    """Attack: HTML that reaches WeasyPrint unescaped (a careless region template) with an
    image, a stylesheet and an @import from the network and from local files (SSRF, local
    file disclosure). Protection, defence in depth: render.py's URL fetcher allows only
    data: URLs and files inside the templates folder."""
    assert allowed_resource((TEMPLATES / "_partials" / "document.css").as_uri())
    assert allowed_resource("data:text/css,p{}")
    assert allowed_resource((TEMPLATES / "fonts" / "DejaVuSans-Latin.ttf").as_uri())
    for url in (
        "file:///etc/passwd",
        TEMPLATES.as_uri() + "/../../../../etc/passwd",
        TEMPLATES.as_uri() + "/%2e%2e/%2e%2e/etc/passwd",
        "file://evil.example/share/x.png",
        f"{web_server}/x.png",
        "https://evil.example/x.png",
        "ftp://evil.example/x",
    ):
        assert not allowed_resource(url), url
    html = (
        f'<style>@import url("{web_server}/import.css");</style>'
        f'<link rel="stylesheet" href="{web_server}/style.css">'
        '<link rel="stylesheet" href="_partials/document.css">'
        f'<p>teksti<img src="{web_server}/image.png"><img src="file:///etc/passwd"></p>'
    )
    pdf = html_to_pdf(html, title="t", language="fi", author="a", subject="s")
    assert pdf.startswith(b"%PDF-")
    assert _Recorder.hits == []


# --- iCalendar ---------------------------------------------------------------------------


_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _ics_lines_ok(ics: bytes) -> None:
    assert b"\n" not in ics.replace(b"\r\n", b"") and b"\r" not in ics.replace(b"\r\n", b"")
    for line in ics.split(b"\r\n"):
        assert len(line) <= 75, line


def _check_calendar(ics: bytes, attendees: set[str], summary: str, location: str) -> None:
    _ics_lines_ok(ics)
    cal = icalendar.Calendar.from_ical(ics)
    (event,) = cal.walk("VEVENT")
    assert not event.errors
    found = event.get("attendee", [])
    found = found if isinstance(found, list) else [found]
    assert {str(a).removeprefix("mailto:") for a in found} == attendees
    assert str(event["summary"]) == summary
    assert str(event["location"]) == location
    assert event["organizer"].params["CN"] == "Hyvinvointialue Bcc: victim@evil.example"
    v = vobject.readOne(ics.decode())
    vevent = v.vevent
    assert {a.value.removeprefix("mailto:") for a in vevent.contents.get("attendee", [])} == (
        attendees
    )
    assert vevent.summary.value == summary and vevent.location.value == location


def test_invitation_and_feed_ics_keep_hostile_text_in_its_property(hostile: Year) -> None:
    """Attack: CR/LF followed by a property ("x\\r\\nATTENDEE:mailto:evil@evil.example"),
    ';', ',', '\\' and long lines of ä/ö in the session title (SUMMARY), place (LOCATION),
    invitation text (DESCRIPTION) and the sender's name (ORGANIZER CN). Protection:
    icalendar's TEXT escaping and parameter quoting, and calendar.py making names one line;
    lines folded at 75 octets. Read back with icalendar and vobject: the same attendees,
    the values round-trip."""
    with db.session_scope(hostile.url) as s:
        view = cycle_view(s)
        summary = f"{SESSION_TITLE.replace(CRLF, LF)}: {view.text(view.cycle.title)}"
        session = next(x for x in view.sessions() if x.key == JAMSA_SESSION)
        invitees = {c.email for c in view.invitees(session)}
    location = PLACE.replace(CRLF, LF)
    invitation = next(
        m
        for m in _messages(hostile)
        if _addresses(m, "To") == ["paivi.makela@jamsa.example"]
        and m.get_body(("calendar",)) is not None
    )
    part = invitation.get_body(("calendar",))
    assert part is not None
    ics = part.get_content().encode()
    _check_calendar(ics, invitees, summary, location)
    cal = icalendar.Calendar.from_ical(ics)
    (event,) = cal.walk("VEVENT")
    paivi = next(a for a in event["attendee"] if "paivi" in str(a))
    assert paivi.params["CN"] == CONTACT_NAME.replace(CRLF, " ")
    description = str(event["description"])
    assert location in description and SESSION_TITLE.replace(CRLF, LF) in description
    feed = (hostile.out / "calendars" / f"2025-{GROUP_KEY}.ics").read_bytes()
    _ics_lines_ok(feed)
    (event,) = icalendar.Calendar.from_ical(feed).walk("VEVENT")
    assert str(event["summary"]) == summary and "attendee" not in event
    assert icalendar.Calendar.from_ical(feed)["x-wr-calname"].endswith(
        GROUP_NAME.replace(CRLF, " ")
    )


@pytest.mark.parametrize(
    "payload",
    [
        "x\r\nATTENDEE:mailto:evil@evil.example",
        "x\rATTENDEE:mailto:evil@evil.example",
        "x\x0bATTENDEE:mailto:evil@evil.example",
        "x\x00y\x1b[31m\x85z\u2028ATTENDEE:mailto:evil@evil.example",
        'a"b;c,d:e\\f ' + "ä" * 100,
    ],
    ids=["crlf", "cr", "vt", "nul-esc-nel-ls", "quote-semicolon-comma-colon-backslash"],
)
def test_build_calendar_with_hostile_text_everywhere(payload: str) -> None:
    """Attack: line breaks of every kind, NUL, ESC and iCalendar delimiters in every text
    value and name of build_calendar. Protection: icalendar's escaping plus calendar.py's
    cleaning of control characters (which icalendar passes raw: a VT or NUL in a CN made
    the whole ATTENDEE line unparseable and dropped the attendee)."""
    event = CalendarEvent(
        uid="hytetu-2025-x@hyvaks.example",
        sequence=0,
        start=helsinki("2025-10-23 09:00"),
        end=helsinki("2025-10-23 11:30"),
        summary=payload,
        description=payload,
        organizer_name=payload,
        organizer_email="hyte@hyvaks.example",
        location=payload,
    )
    people = {"a@jamsa.example", "b@keuruu.example"}
    ics = build_calendar(
        [event],
        method="REQUEST",
        timezone="Europe/Helsinki",
        attendees=[Attendee(payload, e) for e in sorted(people)],
        stamp=helsinki("2025-10-01 07:00"),
    )
    _ics_lines_ok(ics)
    (vevent,) = icalendar.Calendar.from_ical(ics).walk("VEVENT")
    assert not vevent.errors
    assert {str(a).removeprefix("mailto:") for a in vevent["attendee"]} == people
    names = [a.params["CN"] for a in vevent["attendee"]] + [vevent["organizer"].params["CN"]]
    assert names == [one_line(payload)] * 3
    assert not [n for n in names if _CONTROLS.search(n)]  # a name is one line of text
    for name in ("summary", "description", "location"):
        value = str(vevent[name])
        assert value == plain_text(payload).replace("\r\n", "\n").replace("\r", "\n")
        assert not _CONTROLS.search(value.replace("\n", ""))
    v = vobject.readOne(ics.decode()).vevent
    assert {a.value.removeprefix("mailto:") for a in v.contents["attendee"]} == people
    assert v.summary.value == str(vevent["summary"])


# --- e-mail headers ----------------------------------------------------------------------


def test_no_message_gains_a_recipient_or_header_from_hostile_names(hostile: Year) -> None:
    """Attack: CR/LF + "Bcc: victim@evil.example" in the session title (invitation
    subject), the group name (memo subject), the sender's name (From), a contact's name and
    a municipality's name (display names of To). Protection: mail._one_line on every
    subject and display name; the email package quotes display names. Every message, read
    back with policy=default, has no Bcc, no address at evil.example, and its To/Cc are
    exactly the outbox row's recipients."""
    messages = _messages(hostile)
    with db.session_scope(hostile.url) as s:
        rows = {m.message_id: m for m in s.scalars(select(db.OutgoingMessage))}
        recipients = {mid: list(r.recipients) for mid, r in rows.items()}
    assert len(messages) == len(recipients)
    for msg in messages:
        assert "Bcc" not in msg
        assert not [a for a in _addresses(msg, "From") if "evil.example" in a]
        assert "\n" not in str(msg["Subject"]) and "\r" not in str(msg["Subject"])
        assert _addresses(msg, "To") + _addresses(msg, "Cc") == recipients[msg["Message-ID"]]
        assert msg["From"].addresses[0].display_name == "Hyvinvointialue Bcc: victim@evil.example"
    invites = [m for m in messages if _addresses(m, "To") == ["paivi.makela@jamsa.example"]]
    # compared without spaces: CPython's parser puts a space between two encoded words
    # of a long display name ("<scr ipt>"); a cosmetic bug, not an injection
    assert invites and {_unspaced(m["To"].addresses[0].display_name) for m in invites} == {
        _unspaced(CONTACT_NAME)
    }
    assert any(one_line(SESSION_TITLE) in str(m["Subject"]) for m in invites)
    letters = [m for m in messages if _addresses(m, "To") == [MULTIA_REGISTRY]]
    assert len(letters) == 2  # the group memo and the summary
    assert {_unspaced(m["To"].addresses[0].display_name) for m in letters} == {
        _unspaced(MULTIA_NAME)
    }
    assert any(one_line(GROUP_NAME) in str(m["Subject"]) for m in letters)
    assert all("evil.example" not in a for r in recipients.values() for a in r)


@pytest.mark.parametrize("brk", ["\r\n", "\n", "\r", "\x0b", "\x0c", "\x85", "\u2028", "\x00"])
def test_build_message_with_every_line_break_in_subject_and_names(brk: str) -> None:
    """Attack: each character str.splitlines() (and so the email package) takes for a line
    break, and NUL, before "Bcc:" in the subject and in the display names. Protection:
    _one_line (the email package alone raises ValueError on these, so an unprotected
    subject would crash the phase; with VT, NEL or U+2028 it did before this fix)."""
    hostile = f"Jyväskylä{brk}Bcc: victim@evil.example"
    msg = build_message(
        sender=(hostile, "hyte@hyvaks.example"),
        to=[(hostile, "kirjaamo@jyvaskyla.example")],
        cc=[(hostile, "hyte@jyvaskyla.example")],
        subject=hostile,
        text="teksti",
        message_id="<1.hytetu@hyvaks.example>",
        date=helsinki("2025-10-01 07:00"),
        purpose="registry_letter",
    )
    parsed = email.message_from_bytes(msg.as_bytes(), policy=policy.default)
    assert "Bcc" not in parsed
    assert _addresses(parsed, "To") == ["kirjaamo@jyvaskyla.example"]
    assert _addresses(parsed, "Cc") == ["hyte@jyvaskyla.example"]
    one = "Jyväskylä" + ("" if brk == "\x00" else " ") + "Bcc: victim@evil.example"
    assert parsed["Subject"] == one and parsed["To"].addresses[0].display_name == one
    assert parsed["From"].addresses[0].display_name == one


def test_smtp_envelope_has_exactly_the_intended_recipients(hostile: Year) -> None:
    """Attack: the hostile-named letters go out over SMTP. Protection: the envelope comes
    from the outbox row (the parsed To/Cc), never from header text; aiosmtpd receives
    exactly those recipients and a message without Bcc."""
    from aiosmtpd.controller import Controller

    class Handler:
        def __init__(self) -> None:
            self.envelopes: list[Any] = []

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            self.envelopes.append(envelope)
            return "250 OK"

    with db.session_scope(hostile.url) as s:
        rows = [
            (r.raw, list(r.recipients))
            for r in s.scalars(select(db.OutgoingMessage).order_by(db.OutgoingMessage.id))
            if r.recipients in ([MULTIA_REGISTRY], ["paivi.makela@jamsa.example"])
        ][:2]
    handler = Handler()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        smtp = SmtpTransport(SmtpSettings(host="127.0.0.1", port=port, security="none"))
        for raw, to in rows:
            smtp.send(raw, "hyte@hyvaks.example", to)
    finally:
        controller.stop()
    assert [e.rcpt_tos for e in handler.envelopes] == [to for _, to in rows]
    for e in handler.envelopes:
        received = email.message_from_bytes(e.original_content, policy=policy.default)
        assert "Bcc" not in received and "victim" not in "".join(e.rcpt_tos)


# --- CSV and XLSX exports -----------------------------------------------------------------

CELL_PAYLOADS = [*FORMULAS, "\t=1+1", "\r=1+1"]


def test_dispatch_report_csv_neutralises_formulas(hostile: Year, tmp_path: Path) -> None:
    """Attack: cells starting with = + - @ TAB CR in the dispatch report (a registry
    address "=1+1@multia.example" through the real run; an error text and others written
    directly). Protection: write_csv passes every row through hytetu.safe.csv_row, which
    prefixes such a cell with an apostrophe; read back with csv."""
    rows = dispatch.read_csv(hostile.report)
    multia = [r for r in rows if "multia" in r["recipient"]]
    assert len(multia) == 2 and {r["recipient"] for r in multia} == {"'" + MULTIA_REGISTRY}
    for r in rows:
        assert not any(v.startswith(("=", "+", "-", "@", "\t", "\r")) for v in r.values()), r
    row = dict.fromkeys(dispatch.REPORT_COLUMNS, "ok")
    written = [row | {"error": p, "recipient": p, "document": p} for p in CELL_PAYLOADS]
    path = dispatch.write_csv(written, tmp_path / "report.csv")
    back = dispatch.read_csv(path)
    assert [r["error"] for r in back] == ["'" + p for p in CELL_PAYLOADS]
    assert [r["document"] for r in back] == ["'" + p for p in CELL_PAYLOADS]
    assert back[0]["row_id"] == "ok"
    assert written[0]["error"] == CELL_PAYLOADS[0]  # the caller's rows are not changed


def test_cli_dispatch_status_csv_neutralises_formulas(
    hostile: Year, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack: the same report through `hytetu dispatch status --csv`. Protection: the CLI
    writes it with the same write_csv."""
    db_copy = tmp_path / "hytetu.db"
    copy_sqlite(hostile.url, db_copy)
    monkeypatch.setenv("HYTETU_DATABASE_URL", f"sqlite:///{db_copy}")
    out = tmp_path / "status.csv"
    result = CliRunner().invoke(app, ["dispatch", "status", "--csv", str(out)])
    assert result.exit_code == 0, result.output
    recipients = {r["recipient"] for r in csv.DictReader(out.open(encoding="utf-8"))}
    assert "'" + MULTIA_REGISTRY in recipients and MULTIA_REGISTRY not in recipients
    db.dispose(f"sqlite:///{db_copy}")


def test_notes_template_xlsx_keeps_formula_like_text_as_text(hostile: Year, tmp_path: Path) -> None:
    """Attack: attendee organisations "=HYPERLINK(...)", "@SUM(1)", "+1+1", "-2+3" from the
    imported notes are written into the next notes workbook (openpyxl stores a string
    starting with '=' as a formula). Protection: hytetu.safe.protect_workbook makes every
    such cell a string with Excel's quote prefix (the stored form of a leading
    apostrophe): read back with openpyxl it is text, unchanged, and the sheet XML has no
    formula; the workbook imports back to the same names."""
    out = tmp_path / "muistiinpanot.xlsx"
    with db.session_scope(hostile.url) as s:
        view = cycle_view(s)
        notes.write_template(view, JAMSA_SESSION, out)
        filled = load_workbook(out)  # the secretary writes one note and saves
        filled[notes.GENERAL_SHEET].append(["Yleinen nosto"])
        filled.save(tmp_path / "täytetty.xlsx")
        parsed, _ = notes.parse_workbook(tmp_path / "täytetty.xlsx", view)
    book = load_workbook(out)
    cells = {c.value: c for ws in book.worksheets for row in ws.iter_rows() for c in row if c.value}
    for payload in FORMULAS:
        cell = cells[payload]
        assert cell.data_type == "s" and cell.quotePrefix, payload
    assert not [c for c in cells.values() if c.data_type == "f"]
    with zipfile.ZipFile(out) as z:
        sheets = [z.read(n) for n in z.namelist() if n.startswith("xl/worksheets/")]
    assert not [s for s in sheets if b"<f>" in s or b"<f " in s]
    assert set(FORMULAS) <= {a.organisation for a in parsed.attendees}


def test_feedback_import_refuses_formula_cells(hostile: Year, tmp_path: Path) -> None:
    """Attack: a form export whose answer starts with a formula. Protection: the importer
    refuses the file (row and column named), so such text never enters the database from a
    spreadsheet; FORMULA_START is the shared one of hytetu.safe."""
    path = _feedback_csv(tmp_path / "x.csv", "Yhdistys", FORMULAS[0])
    with db.session_scope(hostile.url) as s, pytest.raises(FeedbackImportError) as e:
        import_file(cycle_view(s), path)
    (problem,) = e.value.problems
    assert problem.line == 2 and problem.field == "Näkemys" and "formula" in problem.message


def test_every_spreadsheet_export_uses_the_neutraliser() -> None:
    """Attack: a new CSV or XLSX export written without the neutraliser. Protection (a
    guard for the future): every module of hytetu/ that writes CSV passes its cells
    through hytetu.safe.csv_row/csv_cell, and every one that makes a workbook calls
    protect_workbook before saving it."""
    missing = []
    for path in sorted((ROOT / "hytetu").glob("*.py")):
        source = path.read_text(encoding="utf-8")
        if re.search(r"csv\.(writer|DictWriter)\(", source) and not re.search(
            r"csv_(row|cell)\(", source
        ):
            missing.append(f"{path.name}: csv without csv_row/csv_cell")
        if "Workbook(" in source and "protect_workbook(" not in source:
            missing.append(f"{path.name}: workbook without protect_workbook")
    assert missing == []


# --- file names ----------------------------------------------------------------------------

BAD_KEYS = ["../../etc/passwd", "..\\x", "a/b", "CON", "con", "nul", "jämsä", "a b", "-x", ".x"]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_config_rejects_a_key_that_is_no_safe_file_name(example: Path, key: str) -> None:
    """Attack: a group, municipality or session id made to escape its folder or name a
    device when it becomes a file name (calendars/2025-<group>.ics, notes/<session>.yaml).
    Protection: the Id type (lowercase a-z, 0-9 and '-', no Windows device name); the
    error names file, line and field."""
    line = edit(
        example, "region.yaml", "  - id: jamsa-keuruu-multia-petajavesi", f"  - id: {_q(key)}"
    )
    with pytest.raises(ConfigError) as e:
        load_config(example)
    shown = [str(p) for p in e.value.problems]
    expected = f"{example / 'region.yaml'}:{line}: groups[0].id: "
    assert any(s.startswith(expected) for s in shown), shown
    assert any("file names" in s for s in shown if s.startswith(expected)), shown


def test_config_rejects_a_session_key_with_a_path(example: Path) -> None:
    """Attack: a session id with '/' (notes/<session>.yaml would leave notes/).
    Protection: the Id type on sessions too."""
    line = edit(example, "cycle.yaml", "  - id: 2025-10-23-jamsa", '  - id: "../../x"')
    with pytest.raises(ConfigError) as e:
        load_config(example)
    assert any(
        str(p).startswith(f"{example / 'cycle.yaml'}:{line}: sessions[0].id: ")
        for p in e.value.problems
    )


@pytest.mark.parametrize("char", ["\\0", "\\e", "\\x0b", "\\x7f", "\\x85"])
def test_config_and_notes_reject_control_characters(
    example: Path, loaded: str, tmp_path: Path, char: str
) -> None:
    """Attack: a NUL (PostgreSQL cannot store it, it truncates C strings and file names),
    ESC (terminal escapes in the CLI's output) or other control character written as a
    YAML escape into a name or a finding. Protection: yamlsource.control_problems in the
    config loader and the notes parser; file:line: field: message."""
    line = edit(example, "region.yaml", "name: {fi: Multia}", f'name: {{fi: "Mul{char}tia"}}')
    with pytest.raises(ConfigError) as e:
        load_config(example)
    (problem,) = e.value.problems
    assert str(problem).startswith(f"{example / 'region.yaml'}:{line}: municipalities[")
    assert "control character U+" in problem.message
    path = tmp_path / f"{JAMSA_SESSION}.yaml"
    path.write_text(
        f'session: {JAMSA_SESSION}\ngeneral:\n  - "Yleinen{char} nosto"\n', encoding="utf-8"
    )
    with db.session_scope(loaded) as s, pytest.raises(NotesError) as n:
        notes.import_notes_file(cycle_view(s), path)
    assert [str(p) for p in n.value.problems][0].startswith(f"{path}:3: general[0]: control")


@pytest.mark.parametrize(
    "name", ["../../etc/passwd", "..\\..\\x", "a/b", "CON", "nul\x00.txt", "Jämsä Äänekoski"]
)
def test_slug_and_file_outbox_stay_in_their_folder(tmp_path: Path, name: str) -> None:
    """Attack: a name with '..', '/', '\\', NUL or a device name becoming a file name
    (the summary is named for the region, an .eml for its recipient). Protection: slug()
    keeps only a-z, 0-9 and '-'."""
    part = slug(name)
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]*", part) and ".." not in part
    folder = tmp_path / "outbox"
    receipt = FileOutbox(folder).send(b"x", "hyte@hyvaks.example", [f"{name}@evil.example"])
    written = Path(receipt.detail).resolve()
    assert written.parent == folder.resolve() and written.is_file()


def test_every_file_of_the_hostile_year_is_inside_its_folder(hostile: Year) -> None:
    """Attack: the region's name "../../etc/passwd ..." (the summary's file name), names
    with CR/LF and '/' for groups, municipalities and contacts. Protection: file names are
    made of ids and slugs; every file written is inside out/calendars, memos, outbox or
    reports, and nothing appeared outside the run's folders."""
    allowed = {"calendars", "memos", "outbox", "reports"}
    for path in hostile.out.rglob("*"):
        if path.is_file():
            rel = path.resolve().relative_to(hostile.out.resolve())
            assert rel.parts[0] in allowed and len(rel.parts) == 2, rel
            assert re.fullmatch(r"[A-Za-z0-9._-]+", rel.parts[1]), rel
    top = {p.name for p in hostile.base.iterdir()}
    assert top <= {"config", "out", "hytetu.db", "hytetu.db-wal", "hytetu.db-shm"}, top
    assert not (hostile.base.parent / "etc").exists()
    summary = _versions(hostile)["summary"][2]
    assert re.fullmatch(r"2025-koonti-[a-z0-9-]*etc-passwd[a-z0-9-]*\.pdf", summary), summary
    assert (hostile.out / "memos" / summary).is_file()


# --- SQL -----------------------------------------------------------------------------------


def test_sql_payloads_and_wildcards_round_trip(
    db_url: str, example: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack: quotes, ';', '--' and DROP TABLE in names, findings and feedback; '%' and
    '_' (LIKE wildcards) in a finding and as the search text of `hytetu findings split`;
    a session name with SQL in `hytetu notes template`. Protection: every query is built
    with SQLAlchemy and bound parameters (see the next test), and text search is in
    Python, not LIKE. On SQLite and PostgreSQL: values come back byte for byte, the
    wildcard finds only the finding that contains it, and every table survives."""
    edit(example, "region.yaml", "    name: {fi: Multia}", f"    name: {{fi: {_q(SQL)}}}")
    edit(example, "region.yaml", "{name: Päivi Mäkelä,", f"{{name: {_q(WILDCARDS + SQL)},")
    phases.load(example, db_url)
    tables = set(inspect(db.get_engine(db_url)).get_table_names())
    notes_file = tmp_path / f"{JAMSA_SESSION}.yaml"
    notes_file.write_text(
        yaml.safe_dump(
            {
                "session": JAMSA_SESSION,
                "attendees": [{"organisation": SQL, "type": "ngo"}],
                "findings": [
                    {
                        "priority_area": CELL[0],
                        "service_area": CELL[1],
                        "items": [SQL, WILDCARDS, "Kaatumisten ehkäisy"],
                    }
                ],
            },
            allow_unicode=True,
        ),
        encoding="utf-8",
    )
    export = _feedback_csv(tmp_path / "palaute.csv", SQL, FEEDBACK_TEXT)
    with db.session_scope(db_url) as s:
        view = cycle_view(s)
        notes.import_notes_file(view, notes_file)
        import_file(view, export)
    with db.session_scope(db_url) as s:
        assert s.scalars(select(db.Municipality.name).filter_by(key="multia")).one() == {"fi": SQL}
        assert WILDCARDS + SQL in set(s.scalars(select(db.Contact.name)))
        assert set(s.scalars(select(db.Finding.text))) == {SQL, WILDCARDS, "Kaatumisten ehkäisy"}
        response = s.scalars(select(db.FeedbackResponse)).one()
        assert (response.text, response.respondent_org) == (FEEDBACK_TEXT, SQL)
    monkeypatch.setenv("HYTETU_DATABASE_URL", db_url)
    cli = CliRunner()
    cell = "/".join(CELL)
    for wildcard in ("%", "_"):
        result = cli.invoke(app, ["findings", "split", cell, wildcard, "--by", SQL])
        assert result.exit_code == 0, result.output
    result = cli.invoke(app, ["findings", "merge", cell, SQL, "Kaatumisten", "--by", "x%"])
    assert result.exit_code == 0, result.output
    result = cli.invoke(app, ["findings", "split", cell, "%'; --"])
    assert result.exit_code != 0 and "no finding" in result.output
    template = cli.invoke(
        app, ["notes", "template", "x'; DROP TABLE meeting_session;--", "--out", "t.xlsx"]
    )
    assert template.exit_code != 0 and "unknown session" in template.output
    # `personal-data export` searches e-mail addresses (LIKE, escaped): a wildcard finds
    # nobody, the respondent's own address finds the answer with its SQL text intact
    found = {}
    for address in ("%", "_%@jamsa.example", "palaute@jamsa.example"):
        out = tmp_path / f"export-{len(found)}.json"
        result = cli.invoke(app, ["personal-data", "export", address, "--out", str(out)])
        assert result.exit_code == 0, result.output
        found[address] = json.loads(out.read_text(encoding="utf-8"))
    for address in ("%", "_%@jamsa.example"):
        assert not any(v for k, v in found[address].items() if isinstance(v, list)), address
    answers = found["palaute@jamsa.example"]["feedback_responses"]
    assert [a["text"] for a in answers] == [FEEDBACK_TEXT]
    with db.session_scope(db_url) as s:
        stored = [(c.kind, c.payload, c.actor) for c in s.scalars(select(db.FindingCorrection))]
        assert stored == [
            ("split", {"cell": cell, "text": WILDCARDS}, SQL),
            ("split", {"cell": cell, "text": WILDCARDS}, SQL),
            ("merge", {"cell": cell, "a": SQL, "b": "Kaatumisten ehkäisy"}, "x%"),
        ]
        assert s.scalars(select(db.Finding)).all()
        assert s.scalars(select(db.MeetingSession)).all()
    assert set(inspect(db.get_engine(db_url)).get_table_names()) == tables


_SQL_CALLS = {"text", "exec_driver_sql", "execute", "executescript", "literal_column"}


def _built_string(node: ast.AST) -> bool:
    """A string made at run time: an f-string, '%' or '+' on strings, or str.format."""
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(v, ast.FormattedValue) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
        return isinstance(node.left, ast.Constant | ast.JoinedStr | ast.BinOp)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr == "format"
    return False


def test_no_sql_is_built_from_strings() -> None:
    """Attack: any value reaching SQL text. Protection (a guard for the future): no call of
    text(), exec_driver_sql(), execute() or literal_column() in hytetu/, flows/, tasks/ or
    migrations/ gets a string built at run time; queries are SQLAlchemy expressions with
    bound parameters."""
    offenders = []
    for folder in ("hytetu", "flows", "tasks", "migrations"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call) or not node.args:
                    continue
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name in _SQL_CALLS and _built_string(node.args[0]):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []
