"""The bilingual example, Swedish first (config/examples/pohjanmaa-2026), run through its
year: every message read back with the email package (strict policy) and icalendar."""

from __future__ import annotations

import email
import email.policy
import shutil
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path

import icalendar
import pytest
import vobject
from conftest import ROOT, edit, load_copy
from sqlalchemy import select

from hytetu import db, memos, notes, phases
from hytetu.config import load_config
from hytetu.errors import ConfigError
from hytetu.state import cycle_view

BILINGUAL = ROOT / "config" / "examples" / "pohjanmaa-2026"

#: Words of hytetu's Finnish templates that a Swedish message must never contain.
FINNISH_WORDS = (
    "kirjaamo",
    "muistio",
    "koonti",
    "Ystävällisin",
    "terveisin",
    "Liite",
    "Asianumero",
    "neuvottelu",
    "Lisätietoja",
    "Tilaisuus",
    "Ohjelma",
    "Esitetyt tavoitteet",
    "palautelomakkeella",
    "saakka",
    "Hei ",
)
#: Names of the example's municipalities in Swedish and in Finnish (where they differ).
NAMES = {
    "narpes": ("Närpes", "Närpiö"),
    "kristinestad": ("Kristinestad", "Kristiinankaupunki"),
    "kasko": ("Kaskö", "Kaskinen"),
    "malax": ("Malax", "Maalahti"),
    "vasa": ("Vasa", "Vaasa"),
    "korsholm": ("Korsholm", "Mustasaari"),
    "vora": ("Vörå", "Vöyri"),
    "laihia": ("Laihela", "Laihia"),
    "isokyro": ("Storkyro", "Isokyrö"),
    "jakobstad": ("Jakobstad", "Pietarsaari"),
    "nykarleby": ("Nykarleby", "Uusikaarlepyy"),
    "larsmo": ("Larsmo", "Luoto"),
    "kronoby": ("Kronoby", "Kruunupyy"),
}


def _read(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.strict)
    assert isinstance(msg, EmailMessage)
    return msg


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def _html_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split())


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def osterbotten(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The example's year up to rendered drafts, every draft approved and dispatched."""
    from hytetu.simulate import run_ticks

    base = tmp_path_factory.mktemp("osterbotten")
    url = load_copy(base, BILINGUAL)
    run_ticks(url, base / "out")
    with db.session_scope(url) as s:
        memos.apply_review(cycle_view(s), [], actor="test", approve_all=True)
    phases.run_dispatch(datetime.fromisoformat("2027-01-11T08:00:00+02:00"), base / "out", url)
    yield url, base
    db.dispose(url)


def _messages(url: str, purpose: str) -> list[EmailMessage]:
    with db.session_scope(url) as s:
        rows = s.scalars(select(db.OutgoingMessage).filter_by(purpose=purpose)).all()
        return [_read(m.raw) for m in rows]


def test_the_example_is_valid_swedish_first_and_times_are_local() -> None:
    config = load_config(BILINGUAL)
    assert config.region.languages == ["sv", "fi"]
    assert config.warnings == []
    languages = {m.id: config.municipality_languages(m) for m in config.region_file.municipalities}
    assert languages["narpes"] == ["sv"] and languages["laihia"] == ["fi"]
    assert languages["vasa"] == ["fi", "sv"] and languages["korsholm"] == ["sv", "fi"]
    first, second = config.cycle_file.sessions[:2]
    # No offsets in the file: summer time on 20 October, winter time on 3 November.
    assert first.start.isoformat() == "2026-10-20T13:00:00+03:00"
    assert second.start.isoformat() == "2026-11-03T13:00:00+02:00"


def test_every_part_of_an_invitation_says_the_same(osterbotten) -> None:
    url, _ = osterbotten
    config = load_config(BILINGUAL)
    texts = config.cycle_file.texts
    invitations = _messages(url, "invitation")
    assert invitations
    seen = set()
    for msg in invitations:
        language = msg["Content-Language"]
        seen.add(language)
        plain = _flat(msg.get_body(("plain",)).get_content())
        html = _html_text(msg.get_body(("html",)).get_content())
        ics = next(p for p in msg.walk() if p.get_content_type() == "text/calendar")
        calendar = icalendar.Calendar.from_ical(ics.get_content())
        event = next(iter(calendar.walk("VEVENT")))
        description = _flat(str(event["DESCRIPTION"]))
        assert _flat(vobject.readOne(ics.get_content()).vevent.description.value) == description
        must = [texts.topic[language], texts.law[language]]
        must += [item[language] for item in texts.agenda]
        must += [cell.goal[language] for cell in config.cycle_file.goal_matrix.cells]
        must += ["Linnea Granholm", "+358 40 000 5678", "linnea.granholm@ovo.example"]
        for part, text in (("plain", plain), ("html", html), ("DESCRIPTION", description)):
            for needle in must:
                assert _flat(needle) in text, f"{language} {part}: {needle!r} missing"
            # The region's title is welfare and health only: no safety anywhere.
            assert "säkerhet" not in text and "turvallisuuden" not in text
        if language == "sv":
            for word in FINNISH_WORDS:
                assert word not in plain and word not in html, word
            assert "Hyvinvointikoordinaattori" not in plain
    assert seen == {"sv", "fi"}


def test_each_registry_gets_its_municipalitys_languages_only(osterbotten) -> None:
    url, _ = osterbotten
    config = load_config(BILINGUAL)
    registry = {str(m.registry): m for m in config.region_file.municipalities}
    got: dict[str, set[str]] = defaultdict(set)
    letters = _messages(url, "memo")
    assert letters
    annexes: set[str] = set()
    for msg in letters:
        to = msg["To"].addresses[0]
        m = registry[to.addr_spec]
        language = msg["Content-Language"]
        got[m.id].add(language)
        body = msg.get_body(("plain",)).get_content()
        first_line = body.splitlines()[0]
        name = m.name[language]
        assert to.display_name == name
        files = [p.get_filename() for p in msg.walk() if p.get_filename()]
        # A group memo may carry its feedback annex, named from it in the same language.
        assert len(files) == 1 or (len(files) == 2 and "-sammandrag-" not in files[0])
        if len(files) == 2:
            annex = (
                files[0].replace("-sv.pdf", "-bilaga-sv.pdf")
                if language == "sv"
                else (files[0].replace(".pdf", "-liite.pdf"))
            )
            assert files[1] == annex
            annexes.add(language)
        if language == "sv":
            assert first_line == f"Registratorskontoret, {name}", body[:80]
            assert files[0].startswith(("2026-promemoria-", "2026-sammandrag-"))
            assert files[0].endswith("-sv.pdf")
            for word in FINNISH_WORDS:
                assert word not in body and word not in str(msg["Subject"]), (word, body)
            assert "Välfärdskoordinator Linnea Granholm" in body
            assert str(msg["From"].addresses[0].display_name).startswith("Österbottens")
        else:
            assert first_line == f"{name} kirjaamo", body[:80]
            assert files[0].startswith(("2026-muistio-", "2026-koonti-"))
            assert not files[0].endswith("-sv.pdf")
            assert "Hyvinvointikoordinaattori Linnea Granholm" in body
            assert "Registratorskontoret" not in body and "Med vänliga" not in body
            assert str(msg["From"].addresses[0].display_name).startswith("Pohjanmaan")
        # Never the other language's name of the same municipality.
        if m.id in NAMES:
            other = NAMES[m.id][1] if language == "sv" else NAMES[m.id][0]
            assert other not in first_line
    assert got == {
        m.id: set(config.municipality_languages(m)) for m in config.region_file.municipalities
    }
    assert got["narpes"] == {"sv"} and got["isokyro"] == {"fi"} and got["vasa"] == {"sv", "fi"}
    assert annexes == {"sv", "fi"}  # the feedback annexes went too, each in its language


def test_swedish_feedback_notice_subject_keeps_its_spaces(osterbotten) -> None:
    url, _ = osterbotten
    notices = [m for m in _messages(url, "feedback_open") if m["Content-Language"] == "sv"]
    assert notices
    subject = str(notices[0]["Subject"])
    assert subject == (
        "Synpunkter på målen till och med 30.11.2026 – "
        "Förhandlingar om främjande av välfärd och hälsa 2026"
    )
    body = notices[0].get_body(("plain",)).get_content()
    assert "Välfärdskoordinator Linnea Granholm" in body and "säkerhet" not in body
    reminders = [m for m in _messages(url, "reminder") if m["Content-Language"] == "sv"]
    assert reminders
    for msg in reminders + notices:
        text = msg.get_body(("plain",)).get_content()
        assert "Mer information: Välfärdskoordinator Linnea Granholm, tfn +358 40" in text
        for word in FINNISH_WORDS:
            assert word not in text and word not in str(msg["Subject"]), word


def test_notes_workbook_in_swedish_and_in_finnish(osterbotten, tmp_path: Path) -> None:
    url, _ = osterbotten
    from openpyxl import load_workbook

    with db.session_scope(url) as s:
        view = cycle_view(s)
        key = "2026-10-20-sydosterbotten"
        for language, sheet, text in (
            ("sv", "Lyft", "Fler skolkuratorer behövs"),
            ("fi", "Nostot", "Lisää koulukuraattoreita"),
        ):
            path = notes.write_template(view, key, tmp_path / f"{language}.xlsx", language)
            wb = load_workbook(path)
            assert wb.sheetnames[:4] == list(notes.workbook_names(language).sheets)
            ws = wb[sheet]
            cell = view.matrix()[2][("psykiskt-valbefinnande", "barn-unga-familjer")]
            assert ws["E2"].value == view.text(cell.goal, language)
            ws["G2"] = f"• {text}"
            wb.save(path)
            parsed, warnings = notes.parse_workbook(path, view)
            assert warnings == []
            assert parsed.findings[0].items == [text]
        # The region's first language is the default.
        path = notes.write_template(view, key, tmp_path / "default.xlsx")
        assert load_workbook(path).sheetnames[0] == "Lyft"


def test_goal_without_text_in_a_language_the_region_sends_in(tmp_path: Path) -> None:
    folder = tmp_path / "config"
    shutil.copytree(BILINGUAL, folder)
    line = edit(
        folder,
        "cycle.yaml",
        '        fi: "Työikäisten mielenterveys ja työkyky vahvistuvat"\n',
        "",
    )
    edit(
        folder,
        "region.yaml",
        "    languages: [fi]\n    registry: kirjaamo@laihia",
        "    languages: [en]\n    registry: kirjaamo@laihia",
    )
    with pytest.raises(ConfigError) as info:
        load_config(folder)
    problems = {(p.field, p.severity): p for p in info.value.problems}
    goal = problems[("goal_matrix.cells[1].goal", "error")]
    assert goal.file.endswith("cycle.yaml") and goal.line == line - 2
    assert goal.message.startswith("no text in fi")
    laihia = problems[("municipalities[8].languages[0]", "error")]
    assert "'en' is not one of the region's languages" in laihia.message


def test_coordinators_are_copied_on_the_letter_in_their_language(osterbotten) -> None:
    url, _ = osterbotten
    from hytetu.config import DispatchSettings
    from hytetu.dispatch import _recipients

    settings = DispatchSettings(cc_contacts=True)
    with db.session_scope(url) as s:
        view = cycle_view(s)
        cc: dict[tuple[str, str], list[str]] = {}
        for memo in s.scalars(select(db.Memo).filter_by(kind="group")):
            language = memos.memo_language(view, memo)
            for r in _recipients(view, memo, settings):
                cc[(r.key, language)] = [addr for _, addr in r.cc]
    assert cc[("vasa", "sv")] == ["henrik.lindqvist@vaasa.example"]
    assert cc[("vasa", "fi")] == ["anna-kaisa.rintala@vaasa.example"]
    assert cc[("kasko", "fi")] == ["jari.maki-kuutti@kasko.example"]
    assert cc[("kasko", "sv")] == []
    assert cc[("narpes", "sv")] == ["camilla.nyman@narpes.example"]
    assert ("narpes", "fi") not in cc and ("laihia", "sv") not in cc
