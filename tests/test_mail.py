"""build_message, message ids, slug, the file outbox and the transport choice.

Messages are read back with the standard library's parser (policy.default), as a mail
client would, never compared as strings.
"""

from __future__ import annotations

import email
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import ENCODED_WORD, on_the_wire
from icalendar import Calendar

from hytetu.calendar import Attendee, CalendarEvent, build_calendar, session_uid
from hytetu.errors import DeliveryError
from hytetu.mail import (
    AUTOMATIC_REPLIES,
    Attachment,
    FileOutbox,
    MailSettings,
    SmtpSettings,
    SmtpTransport,
    build_message,
    fold_text_header,
    make_transport,
    message_id_for,
    slug,
)

HELSINKI = ZoneInfo("Europe/Helsinki")
SENDER = ("Keski-Suomen hyvinvointialue, HYTE-yksikkö", "hyte@hyvaks.example")
TO = [("Äijälä, Örjan", "orjan.aijala@jamsa.example"), ("Åsa Öhman", "asa.ohman@keuruu.example")]
CC = [("Pää Ässä", "kirjaamo@petajavesi.example")]
SUBJECT = "Kutsu: hyte-neuvottelu – Jämsä, Keuruu, Multia ja Petäjävesi 23.10.2025"
DATE = datetime(2025, 9, 1, 12, 30, tzinfo=HELSINKI)
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\r\n1 0 obj\x00\xff\x80\n.\r\n.\n" + bytes(range(256)) * 4


def calendar(method: str = "REQUEST") -> bytes:
    start = datetime(2025, 10, 23, 9, 0, tzinfo=HELSINKI)
    event = CalendarEvent(
        uid=session_uid(2025, "jamsa", SENDER[1]),
        sequence=0,
        start=start,
        end=start.replace(hour=11),
        summary="Hyte-neuvottelu: Jämsä, Keuruu; Multia ja Petäjävesi",
        description="Tervetuloa.\nEsityslista liitteenä.",
        organizer_name=SENDER[0],
        organizer_email=SENDER[1],
        location="Jämsän kaupungintalo",
    )
    return build_calendar(
        [event],
        method=method,
        timezone="Europe/Helsinki",
        attendees=[Attendee(*TO[0])],
        stamp=DATE,
    )


def message(**overrides: object) -> EmailMessage:
    fields: dict[str, object] = {
        "sender": SENDER,
        "to": TO,
        "cc": CC,
        "subject": SUBJECT,
        "text": "Hei,\n\ntervetuloa neuvotteluun. Ääkköset: äöå ÄÖÅ.\n.\nrivi pisteellä\n",
        "html": "<p>Hei,</p><p>tervetuloa neuvotteluun. Ääkköset: äöå ÄÖÅ.</p>",
        "message_id": message_id_for(
            "invite:1:jamsa:orjan.aijala@jamsa.example:0:REQUEST", SENDER[1]
        ),
        "date": DATE,
        "purpose": "invitation",
        "calendar": calendar(),
        "attachments": [Attachment("Muistio Jämsä 2025.pdf", PDF)],
    }
    fields.update(overrides)
    return build_message(**fields)  # type: ignore[arg-type]


def parse(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


# --- structure -------------------------------------------------------------------------


def test_structure_mixed_of_alternative_and_attachments() -> None:
    msg = parse(message().as_bytes())
    assert msg.get_content_type() == "multipart/mixed"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == [
        "multipart/alternative",
        "text/calendar",
        "application/pdf",
    ]
    alternative = parts[0]
    alternatives = list(alternative.iter_parts())
    assert [p.get_content_type() for p in alternatives] == [
        "text/plain",
        "text/html",
        "text/calendar",
    ]
    inline_ics = alternatives[2]
    assert inline_ics.get_param("method") == "REQUEST"
    assert inline_ics.get_content_charset() == "utf-8"
    assert not inline_ics.is_attachment()

    ics = parts[1]
    assert ics.is_attachment()
    assert ics.get_filename() == "kutsu.ics"
    assert ics.get_param("method") == "REQUEST"
    # both calendar parts carry the same iCalendar object
    for part in (inline_ics, ics):
        parsed = Calendar.from_ical(part.get_content())
        original = Calendar.from_ical(calendar())
        assert parsed["METHOD"] == "REQUEST"
        assert parsed.walk("VEVENT")[0]["UID"] == original.walk("VEVENT")[0]["UID"]
        assert str(parsed.walk("VEVENT")[0]["SUMMARY"]) == str(
            original.walk("VEVENT")[0]["SUMMARY"]
        )
        assert parsed.to_ical() == original.to_ical()

    text = alternatives[0].get_content().replace("\r\n", "\n")  # 8bit parts keep CRLF
    assert text.startswith("Hei,\n\ntervetuloa")
    assert "Ääkköset: äöå ÄÖÅ." in alternatives[0].get_content()
    assert "Ääkköset: äöå ÄÖÅ." in alternatives[1].get_content()


def test_cancel_and_swedish_calendar_parts() -> None:
    msg = parse(
        message(calendar=calendar("CANCEL"), calendar_method="CANCEL", language="sv").as_bytes()
    )
    calendars = [p for p in msg.walk() if p.get_content_type() == "text/calendar"]
    assert len(calendars) == 2
    assert all(p.get_param("method") == "CANCEL" for p in calendars)
    assert [p.get_filename() for p in calendars] == [None, "inbjudan.ics"]
    assert Calendar.from_ical(calendars[0].get_content())["METHOD"] == "CANCEL"
    assert msg["Content-Language"] == "sv"


def test_plain_text_message_is_a_single_part() -> None:
    msg = parse(message(html=None, calendar=None, attachments=None, cc=None).as_bytes())
    assert msg.get_content_type() == "text/plain"
    assert not msg.is_multipart()
    assert msg["Cc"] is None
    assert "Ääkköset" in msg.get_content()


def test_top_level_headers() -> None:
    built = message()
    msg = parse(built.as_bytes())
    assert msg["Message-ID"] == built["Message-ID"]
    assert msg["Message-ID"].startswith("<") and msg["Message-ID"].endswith(
        ".hytetu@hyvaks.example>"
    )
    assert msg["Date"].datetime == DATE
    assert msg["MIME-Version"] == "1.0"
    assert msg["Content-Language"] == "fi"
    assert [a.addr_spec for a in msg["Cc"].addresses] == ["kirjaamo@petajavesi.example"]


def test_serialised_message_is_ascii_headers_with_crlf_and_short_lines() -> None:
    raw = message().as_bytes()
    head, _, _ = raw.partition(b"\r\n\r\n")
    assert head.isascii()  # non-ASCII only as RFC 2047 encoded words
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998  # RFC 5322 2.1.1


# --- international text ----------------------------------------------------------------


def test_subject_and_display_names_with_finnish_letters_survive() -> None:
    msg = parse(message().as_bytes())
    assert msg["Subject"] == SUBJECT
    (sender,) = msg["From"].addresses
    assert (sender.display_name, sender.addr_spec) == SENDER
    to = [(a.display_name, a.addr_spec) for a in msg["To"].addresses]
    assert to == TO  # the comma in "Äijälä, Örjan" does not split the address
    cc = [(a.display_name, a.addr_spec) for a in msg["Cc"].addresses]
    assert cc == CC


@pytest.mark.parametrize(
    "subject",
    [
        "Synpunkter på målen till och med 30.11.2026 – Förhandlingar om främjande av "
        "välfärd, hälsa och säkerhet 2026",
        "Påminnelse: Jakobstadsregionen 17.11.2026 – Förhandlingar om främjande av välfärd "
        "och hälsa 2026 (ÖVPH/812/00.01.00/2026)",
        "Muistutus: palautetta voi antaa 19.12.2025 saakka – Hyvinvoinnin, terveyden ja "
        "turvallisuuden edistämisen neuvottelut 2025",
    ],
)
def test_long_subject_keeps_every_space_through_folding(subject: str) -> None:
    """The email package's folding drops the space after an encoded word ("30.11.2026–
    Förhandlingar"); read back strictly, the subject is exactly as written."""
    raw = message(subject=subject).as_bytes()
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= 78 for line in head.split(b"\r\n"))
    assert b"?q??=" not in head and b"?b??=" not in head  # no empty encoded word
    strict = email.message_from_bytes(raw, policy=policy.strict)
    assert str(strict["Subject"]) == subject


@pytest.mark.parametrize(
    "evil",
    [
        "Kutsu\r\nBcc: victim@example.org",
        "Kutsu\nBcc: victim@example.org",
        "Kutsu\rBcc: victim@example.org",
        "Kutsu\r\n\r\nInjected body",
        "Kutsu\r\n Bcc: folded@example.org",
    ],
)
def test_line_breaks_in_subject_or_names_cannot_inject_headers(evil: str) -> None:
    built = message(
        subject=evil,
        sender=(evil, SENDER[1]),
        to=[(evil, TO[0][1])],
        cc=[(evil, CC[0][1])],
    )
    raw = built.as_bytes()
    msg = parse(raw)
    assert set(msg.keys()) == {
        "From",
        "To",
        "Cc",
        "Subject",
        "Date",
        "Message-ID",
        "Content-Language",
        "MIME-Version",
        "Content-Type",
        "X-Auto-Response-Suppress",
    }
    assert "Bcc" not in msg
    assert all(len(msg.get_all(name)) == 1 for name in msg.keys())  # noqa: SIM118
    head, _, _ = raw.partition(b"\r\n\r\n")
    assert b"\r\nBcc:" not in head and not head.startswith(b"Bcc:")
    assert b"Injected body" not in raw.partition(b"\r\n\r\n")[2].split(b"--")[0]
    assert "\r" not in msg["Subject"] and "\n" not in msg["Subject"]
    assert msg["Subject"].startswith("Kutsu")
    # each address header still holds exactly its one address
    assert [a.addr_spec for a in msg["From"].addresses] == [SENDER[1]]
    assert [a.addr_spec for a in msg["To"].addresses] == [TO[0][1]]
    assert [a.addr_spec for a in msg["Cc"].addresses] == [CC[0][1]]


# --- automatic replies (RFC 3834, [MS-OXCMAIL] 2.1.3.2.20) -------------------------------


@pytest.mark.parametrize(
    ("purpose", "auto_submitted", "suppress"),
    [
        ("invitation", None, "OOF"),
        ("reminder", "auto-generated", "OOF, AutoReply"),
        ("feedback_open", "auto-generated", "OOF, AutoReply"),
        ("feedback_reminder", "auto-generated", "OOF, AutoReply"),
        ("contact_letter", None, "OOF"),
        ("registry_letter", None, None),  # the registry's automatic receipt is wanted
    ],
)
def test_each_purpose_says_whether_it_is_automatic_and_which_replies_to_spare(
    purpose: str, auto_submitted: str | None, suppress: str | None
) -> None:
    msg = on_the_wire(message(purpose=purpose).as_bytes())
    assert msg["Auto-Submitted"] == auto_submitted
    assert msg["X-Auto-Response-Suppress"] == suppress
    if suppress:  # only values [MS-OXCMAIL] defines; never the delivery reports (NDR)
        values = {v.strip() for v in suppress.split(",")}
        assert values <= {"DR", "NDR", "RN", "NRN", "OOF", "AutoReply"}
        assert "NDR" not in values and "All" not in values


def test_every_purpose_is_decided() -> None:
    from typing import get_args

    from hytetu.mail import MessagePurpose

    assert set(get_args(MessagePurpose)) == set(AUTOMATIC_REPLIES)


# --- 7-bit on the wire ------------------------------------------------------------------


def test_every_part_is_7bit_and_decodes_back_to_what_was_given() -> None:
    text = "Hei,\n\ntervetuloa neuvotteluun. Ääkköset: äöå ÄÖÅ.\n.\nrivi pisteellä\n"
    html = "<p>Hei,</p><p>" + "Pitkä rivi ilman rivinvaihtoa – äöå. " * 20 + "</p>\n"
    attachments = [Attachment("Muistio Jämsä.pdf", PDF)]
    raw = message(text=text, html=html, attachments=attachments).as_bytes()
    msg = on_the_wire(raw)
    leaves = [p for p in msg.walk() if not p.is_multipart()]
    encodings = {p.get_content_type(): p["Content-Transfer-Encoding"] for p in leaves}
    assert encodings == {
        "text/plain": "quoted-printable",
        "text/html": "quoted-printable",
        "text/calendar": "base64",
        "application/pdf": "base64",
    }

    def lf(value: str) -> str:
        return value.replace("\r\n", "\n")

    plain, rich, inline_ics, attached_ics, pdf = leaves
    assert lf(plain.get_content()) == text
    assert lf(rich.get_content()) == html
    for part in (inline_ics, attached_ics):
        assert part.get_content_charset() == "utf-8"
        assert part.get_payload(decode=True) == calendar()  # the same octets, CRLF and all
    assert pdf.get_content() == PDF


# --- subjects (RFC 2047) ------------------------------------------------------------------


def _subjects() -> list[str]:
    """Subjects whose non-ASCII word lands at every position of the first and second line,
    so that every room left on a line (none, 1, 2 ... octets) is met once."""
    out = []
    for n in range(1, 90):
        head = " ".join(["Muistutus:"] + ["x" * (n % 7 + 1)] * (n // 7 + 1))[:n]
        out.append(f"{head} 20.11.2025 – Hyvinvoinnin, terveyden edistämisen neuvottelut 2025")
        out.append(f"{head} Kutsu: Åsa Öhman – äö ÄÖ å")
    return out


@pytest.mark.parametrize("subject", _subjects())
def test_subject_folds_without_empty_encoded_words_and_decodes_back(subject: str) -> None:
    raw = message(subject=subject).as_bytes()
    msg = on_the_wire(raw)  # no empty and no over-long encoded word
    assert msg["Subject"] == subject
    head = raw.partition(b"\r\n\r\n")[0].decode()
    field = head[head.index("Subject:") :].split("\r\n")
    lines = [field[0]] + [line for line in field[1:] if line[:1] in (" ", "\t")]
    lines = lines[: next((i for i, line in enumerate(lines[1:], 1) if ":" in line[:1]), None)]
    assert all(len(line) <= 78 for line in lines), lines


def test_the_subject_that_met_the_email_packages_empty_encoded_word() -> None:
    """This subject made the stdlib write ``=?utf-8?q??=`` (its folder, CPython gh-136052)."""
    subject = (
        "Muistutus: Viitasaari, Pihtipudas ja Kinnula 20.11.2025 – Hyvinvoinnin, "
        "terveyden ja turvallisuuden edistämisen neuvottelut 2025"
    )
    folded = fold_text_header("Subject", subject)
    assert "?q??=" not in folded
    assert [m.group(3) for m in ENCODED_WORD.finditer(folded)] == ["=E2=80=93", "edist=C3=A4misen"]
    assert on_the_wire(message(subject=subject).as_bytes())["Subject"] == subject


@pytest.mark.parametrize("subject", ["ä  ä", "ä  a", "a  ä  b", "Jämsä–Keuruu"])
def test_spaces_between_words_survive_in_a_subject(subject: str) -> None:
    assert on_the_wire(message(subject=subject).as_bytes())["Subject"] == subject


def test_an_encoded_word_look_alike_is_folded_as_text() -> None:
    folded = fold_text_header("Subject", "=?x?q?y?= ä")
    parsed = email.message_from_bytes(f"{folded}\r\n".encode(), policy=policy.strict)
    assert parsed["Subject"] == "=?x?q?y?= ä"


# --- attachments -----------------------------------------------------------------------


def test_pdf_attachments_come_back_byte_identical_with_their_names() -> None:
    second = bytes(reversed(PDF)) + b"\r\n.\r\n"  # an SMTP end-of-data look-alike inside
    attachments = [
        Attachment("Muistio Jämsä, Keuruu, Multia ja Petäjävesi 2025.pdf", PDF),
        Attachment("yhteenveto_åäö.pdf", second),
    ]
    msg = parse(message(attachments=attachments).as_bytes())
    pdfs = [p for p in msg.iter_attachments() if p.get_content_type() == "application/pdf"]
    assert [(p.get_filename(), p.get_content()) for p in pdfs] == [
        (a.filename, a.content) for a in attachments
    ]
    assert all(p.get_content_disposition() == "attachment" for p in pdfs)


def test_attachment_without_calendar_or_html() -> None:
    msg = parse(
        message(html=None, calendar=None, attachments=[Attachment("m.pdf", PDF)]).as_bytes()
    )
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "application/pdf"]
    (pdf,) = msg.iter_attachments()
    assert pdf.get_content() == PDF


# --- message ids ---------------------------------------------------------------------


def test_message_id_is_deterministic_and_differs_by_key() -> None:
    a = message_id_for("invite:1:jamsa:a@jamsa.example:0:REQUEST", "hyte@hyvaks.example")
    assert a == message_id_for("invite:1:jamsa:a@jamsa.example:0:REQUEST", "hyte@hyvaks.example")
    assert a != message_id_for("invite:1:jamsa:a@jamsa.example:1:REQUEST", "hyte@hyvaks.example")
    assert a != message_id_for("invite:1:jamsa:a@jamsa.example:0:CANCEL", "hyte@hyvaks.example")
    assert a.startswith("<") and a.endswith("@hyvaks.example>")
    keys = [f"memo:{i}:ääkkönen" for i in range(200)]
    assert len({message_id_for(k, "hyte@hyvaks.example") for k in keys}) == 200
    parsed = parse(message(message_id=a).as_bytes())
    assert parsed["Message-ID"] == a


# --- slug ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Jämsä, Keuruu, Multia ja Petäjävesi", "jamsa-keuruu-multia-ja-petajavesi"),
        ("Äänekoski", "aanekoski"),
        ("Jyväskylä / Muurame", "jyvaskyla-muurame"),
        ("Åland – Ålands landskapsregering", "aland-alands-landskapsregering"),
        ("orjan.aijala@jamsa.example", "orjan-aijala-jamsa-example"),
        ("   ", "x"),
        ("", "x"),
    ],
)
def test_slug_of_finnish_names(text: str, expected: str) -> None:
    assert slug(text) == expected


@pytest.mark.parametrize(
    "text", ["../../etc/passwd", "..", "/etc/passwd", "..\\..\\windows", "a/../../b", "\x00/.."]
)
def test_slug_cannot_escape_a_folder(text: str) -> None:
    result = slug(text)
    assert "/" not in result and "\\" not in result and ".." not in result
    assert result and result not in {".", ".."}
    assert result == result.strip("-")


def test_slug_respects_max_length() -> None:
    assert len(slug("Jämsä " * 50, 40)) <= 40
    assert slug("Jämsä " * 50, 40).startswith("jamsa-jamsa")


# --- file outbox -----------------------------------------------------------------------


def test_file_outbox_writes_a_parseable_eml(tmp_path: Path) -> None:
    built = message()
    raw = built.as_bytes()
    outbox = FileOutbox(tmp_path / "outbox")
    receipt = outbox.send(raw, SENDER[1], [TO[0][1], TO[1][1]])
    path = Path(receipt.detail)
    assert receipt.transport == "file"
    assert path.parent == tmp_path / "outbox"
    assert path.suffix == ".eml"
    assert path.read_bytes() == raw
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left over
    msg = parse(path.read_bytes())
    assert msg["Message-ID"] == built["Message-ID"]
    assert msg["Subject"] == SUBJECT
    (pdf,) = [p for p in msg.iter_attachments() if p.get_content_type() == "application/pdf"]
    assert pdf.get_content() == PDF


def test_file_outbox_keeps_different_messages_apart_and_stays_in_its_folder(
    tmp_path: Path,
) -> None:
    outbox = FileOutbox(tmp_path / "out")
    first = outbox.send(message().as_bytes(), SENDER[1], ["../../etc/passwd@jamsa.example"])
    second = outbox.send(message(subject="Toinen").as_bytes(), SENDER[1], [TO[0][1]])
    for receipt in (first, second):
        path = Path(receipt.detail).resolve()
        assert path.parent == (tmp_path / "out").resolve()
    assert first.detail != second.detail
    assert len(list((tmp_path / "out").glob("*.eml"))) == 2


# --- transport choice ------------------------------------------------------------------


def test_make_transport_defaults_to_the_file_outbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HYTETU_TRANSPORT", raising=False)
    transport = make_transport(MailSettings(), tmp_path)
    assert isinstance(transport, FileOutbox)
    assert transport.folder == tmp_path / "outbox"
    assert transport.name == "file"


def test_make_transport_smtp_and_the_file_override(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HYTETU_TRANSPORT", raising=False)
    settings = MailSettings(transport="smtp", smtp=SmtpSettings(host="smtp.example.fi"))
    assert isinstance(make_transport(settings, tmp_path), SmtpTransport)
    monkeypatch.setenv("HYTETU_TRANSPORT", "file")
    assert isinstance(make_transport(settings, tmp_path), FileOutbox)


def test_make_transport_smtp_without_settings_is_a_permanent_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HYTETU_TRANSPORT", raising=False)
    with pytest.raises(DeliveryError) as info:
        make_transport(MailSettings(transport="smtp"), tmp_path)
    assert info.value.permanent
    assert "mail.smtp" in str(info.value)


def test_mail_settings_refuse_a_password_in_the_file() -> None:
    with pytest.raises(ValueError):
        SmtpSettings.model_validate({"host": "smtp.example.fi", "password": "salasana"})
    assert MailSettings.model_validate({}).transport == "file"
    assert UTC  # the date of a message may be given in any zone
