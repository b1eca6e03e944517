"""EwsTransport (exchangelib) against a local endpoint that speaks Exchange's EWS SOAP
(tests/ews_server.py). The tests assert on the XML the server receives.
"""

from __future__ import annotations

import base64
import datetime as dt
import email
import logging
import traceback
import uuid
from email import policy
from typing import Any
from urllib.parse import quote_plus

import pytest
from ews_server import (  # the fixtures too: pytest finds them in this module's names
    CLIENT_ID,
    CLIENT_SECRET,
    NS,
    PASSWORD,
    PASSWORD_ENV,
    SECRET_ENV,
    SENDER,
    SUBJECT,
    TENANT,
    USER,
    Exchange,
    _free_port,
    exchange,
    oauth_settings,
    secrets,
    settings,
)

from hytetu.errors import DeliveryError
from hytetu.ews import EwsTransport
from hytetu.mail import MailSettings, build_message, make_transport
from hytetu.transport_settings import EwsSettings


def raw_message(to: list[str], cc: list[str] | None = None, message_id: str = "") -> bytes:
    msg = build_message(
        sender=("Keski-Suomen hyvinvointialue", SENDER),
        to=[(f"Määttä Åsa {i}", a) for i, a in enumerate(to)],
        cc=[("Kirjaamo", a) for a in cc or []],
        subject=SUBJECT,
        text="Hei,\n\ntervetuloa neuvotteluun. Ääkköset: äöå.\n",
        html="<p>Hei, tervetuloa neuvotteluun. Ääkköset: äöå.</p>",
        calendar=b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n",
        message_id=message_id or f"<{uuid.uuid4().hex}.hytetu@hyvaks.example>",
        date=dt.datetime(2025, 10, 2, 7, 0, tzinfo=dt.UTC),
        purpose="invitation",
    )
    return msg.as_bytes()


def error_text(error: BaseException) -> str:
    """Everything an operator could see of an error: message, repr, traceback, causes."""
    parts = [str(error), repr(error), "".join(traceback.format_exception(error))]
    for linked in (error.__cause__, error.__context__):
        if linked is not None:
            parts += [str(linked), repr(linked)]
    return "\n".join(parts)


def _leaks(text: str, exchange: Exchange | None = None) -> list[str]:
    candidates = [PASSWORD, CLIENT_SECRET, quote_plus(PASSWORD), quote_plus(CLIENT_SECRET)]
    for encoding in ("utf-8", "latin-1"):
        candidates.append(base64.b64encode(f"{USER}:{PASSWORD}".encode(encoding)).decode())
    if exchange is not None:
        candidates.append(exchange.token)
    return [c for c in candidates if c in text]


# --- the tests --------------------------------------------------------------------------


def test_sends_the_exact_mime_and_saves_it_to_sent_items(
    exchange: tuple[Exchange, int], secrets: None, caplog: pytest.LogCaptureFixture
) -> None:
    state, port = exchange
    to = ["hyte@jamsa.example", "maija.meikalainen@keuruu.example"]
    cc = ["kirjaamo@multia.example"]
    blind = "arkisto@hyvaks.example"
    raw = raw_message(to, cc)
    caplog.set_level(logging.DEBUG)

    receipt = EwsTransport(settings(port)).send(raw, SENDER, [*to, *cc, blind])

    assert receipt.transport == "ews"
    assert state.operations()[-1] == "CreateItem"
    create = state.body_of("CreateItem")
    assert create.attrib["MessageDisposition"] == "SendAndSaveCopy"
    saved = create.find("m:SavedItemFolderId/t:DistinguishedFolderId", NS)
    assert saved is not None and saved.attrib["Id"] == "sentitems"
    assert saved.findtext("t:Mailbox/t:EmailAddress", namespaces=NS) == SENDER
    mime = create.find("m:Items/t:Message/t:MimeContent", NS)
    assert mime is not None and mime.attrib.get("CharacterSet", "UTF-8").upper() == "UTF-8"
    sent = base64.b64decode(mime.text or "")
    assert sent == raw
    parsed = email.message_from_bytes(sent, policy=policy.default)
    assert parsed["Subject"] == SUBJECT
    assert parsed["To"].addresses[0].display_name == "Määttä Åsa 0"

    def addresses(path: str) -> list[str]:
        return [a.text or "" for a in create.iterfind(f"m:Items/t:Message/{path}", NS)]

    assert addresses("t:ToRecipients/t:Mailbox/t:EmailAddress") == to
    assert addresses("t:CcRecipients/t:Mailbox/t:EmailAddress") == cc
    assert addresses("t:BccRecipients/t:Mailbox/t:EmailAddress") == [blind]
    assert list(state.sent_items.values()) == [raw]
    assert _leaks(caplog.text) == []  # exchangelib logs request headers at DEBUG


def test_server_busy_is_retried_after_the_back_off(
    exchange: tuple[Exchange, int], secrets: None
) -> None:
    state, port = exchange
    state.busy_first = 1
    raw = raw_message(["hyte@joutsa.example"])

    EwsTransport(settings(port)).send(raw, SENDER, ["hyte@joutsa.example"])

    assert state.operations().count("CreateItem") == 2
    assert list(state.sent_items.values()) == [raw]


def test_busy_beyond_max_wait_is_a_temporary_error(
    exchange: tuple[Exchange, int], secrets: None
) -> None:
    state, port = exchange
    state.busy_first = 100
    with pytest.raises(DeliveryError) as raised:
        EwsTransport(settings(port, max_wait_seconds=0)).send(
            raw_message(["hyte@joutsa.example"]), SENDER, ["hyte@joutsa.example"]
        )
    assert not raised.value.permanent
    assert "busy" in str(raised.value)
    assert state.sent_items == {}


def test_invalid_recipient_is_a_permanent_error(
    exchange: tuple[Exchange, int], secrets: None
) -> None:
    state, port = exchange
    state.invalid_recipients = {"ei-ole@luhanka.example"}
    with pytest.raises(DeliveryError) as raised:
        EwsTransport(settings(port)).send(
            raw_message(["ei-ole@luhanka.example"]), SENDER, ["ei-ole@luhanka.example"]
        )
    error = raised.value
    assert error.permanent
    assert "ErrorInvalidRecipients" in str(error)
    assert error.recipient == "ei-ole@luhanka.example"
    assert _leaks(error_text(error)) == []
    assert state.sent_items == {}


def test_wrong_password_is_permanent_and_not_shown(
    exchange: tuple[Exchange, int], secrets: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, port = exchange
    wrong = "väärä-Salasana-123"
    monkeypatch.setenv(PASSWORD_ENV, wrong)
    with pytest.raises(DeliveryError) as raised:
        EwsTransport(settings(port)).send(
            raw_message(["hyte@toivakka.example"]), SENDER, ["hyte@toivakka.example"]
        )
    assert raised.value.permanent
    text = error_text(raised.value)
    assert wrong not in text
    for encoding in ("utf-8", "latin-1"):
        assert base64.b64encode(f"{USER}:{wrong}".encode(encoding)).decode() not in text


def test_missing_secret_is_a_clear_permanent_error(
    exchange: tuple[Exchange, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, port = exchange
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    with pytest.raises(DeliveryError, match=PASSWORD_ENV) as raised:
        EwsTransport(settings(port)).send(raw_message([SENDER]), SENDER, [SENDER])
    assert raised.value.permanent
    assert state.requests == []


def test_unreachable_server_is_a_temporary_error(secrets: None) -> None:
    port = _free_port()  # nothing listens there
    with pytest.raises(DeliveryError) as raised:
        EwsTransport(settings(port, max_wait_seconds=0)).send(
            raw_message(["hyte@kinnula.example"]), SENDER, ["hyte@kinnula.example"]
        )
    assert not raised.value.permanent
    assert _leaks(error_text(raised.value)) == []


def test_was_sent_searches_sent_items_by_message_id(
    exchange: tuple[Exchange, int], secrets: None
) -> None:
    state, port = exchange
    transport = EwsTransport(settings(port))
    message_id = "<5f1d2c3b4a.hytetu@hyvaks.example>"
    assert transport.was_sent(message_id, SENDER) is False
    transport.send(
        raw_message(["hyte@jamsa.example"], message_id=message_id),
        SENDER,
        ["hyte@jamsa.example"],
    )
    assert transport.was_sent(message_id, SENDER) is True
    find = state.body_of("FindItem")
    folder = find.find("m:ParentFolderIds/*", NS)
    assert folder is not None and folder.attrib["Id"] in ("sentitems", "AAMk-sentitems")
    constant = find.find(".//t:IsEqualTo/t:FieldURIOrConstant/t:Constant", NS)
    assert constant is not None and constant.attrib["Value"] == message_id


def test_was_sent_is_none_when_the_lookup_fails(secrets: None) -> None:
    transport = EwsTransport(settings(_free_port(), max_wait_seconds=0))
    assert transport.was_sent("<x.hytetu@hyvaks.example>", SENDER) is None


def test_oauth2_client_credentials_and_impersonation(
    exchange: tuple[Exchange, int], secrets: None, caplog: pytest.LogCaptureFixture
) -> None:
    state, port = exchange
    state.auth = "oauth2"
    caplog.set_level(logging.DEBUG)
    raw = raw_message(["hyte@saarijarvi.example"])

    EwsTransport(oauth_settings(port)).send(raw, SENDER, ["hyte@saarijarvi.example"])

    (form,) = state.token_requests
    assert form["grant_type"] == ["client_credentials"]
    assert form["client_id"] == [CLIENT_ID]
    assert form["scope"] == ["https://outlook.office365.com/.default"]
    create_headers = next(h for op, h, _ in state.requests if op == "CreateItem")
    assert create_headers["Authorization"] == f"Bearer {state.token}"
    # app-only access acts on the sender's mailbox by impersonation (a SOAP header)
    header = state.headers[state.operations().index("CreateItem")]
    impersonated = header.find("t:ExchangeImpersonation/t:ConnectingSID/t:PrimarySmtpAddress", NS)
    assert impersonated is not None and impersonated.text == SENDER
    assert list(state.sent_items.values()) == [raw]
    assert _leaks(caplog.text, state) == []


def test_oauth2_wrong_secret_is_permanent_and_not_shown(
    exchange: tuple[Exchange, int], secrets: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    state, port = exchange
    state.auth = "oauth2"
    wrong = "väärä~salaisuus.77"
    monkeypatch.setenv(SECRET_ENV, wrong)
    with pytest.raises(DeliveryError) as raised:
        EwsTransport(oauth_settings(port)).send(
            raw_message(["hyte@laukaa.example"]), SENDER, ["hyte@laukaa.example"]
        )
    assert raised.value.permanent
    assert wrong not in error_text(raised.value)
    assert state.sent_items == {}


def test_credentials_come_from_the_environment(secrets: None) -> None:
    from exchangelib import Credentials, OAuth2Credentials

    oauth = EwsTransport(oauth_settings(1)).credentials(SENDER)
    assert isinstance(oauth, OAuth2Credentials)
    assert (oauth.tenant_id, oauth.client_id, oauth.client_secret) == (
        TENANT,
        CLIENT_ID,
        CLIENT_SECRET,
    )
    assert oauth.identity.primary_smtp_address == SENDER
    online = EwsSettings(
        server="outlook.office365.com",
        tenant_id=TENANT,
        client_id=CLIENT_ID,
        client_secret_env=SECRET_ENV,
    )
    assert EwsTransport(online).configuration(SENDER).service_endpoint == (
        "https://outlook.office365.com/EWS/Exchange.asmx"
    )
    ntlm = EwsTransport(settings(1, auth="ntlm"))
    creds = ntlm.credentials(SENDER)
    assert isinstance(creds, Credentials)
    assert (creds.username, creds.password) == (USER, PASSWORD)
    assert ntlm.configuration(SENDER).auth_type == "NTLM"
    assert PASSWORD not in repr(creds) and CLIENT_SECRET not in repr(oauth)


def test_settings_need_their_auth_fields() -> None:
    with pytest.raises(ValueError, match="tenant_id and client_id"):
        EwsSettings(server="outlook.office365.com")
    with pytest.raises(ValueError, match="username"):
        EwsSettings(server="mail.hyvaks.example", auth="ntlm")


def test_make_transport_chooses_ews(tmp_path: Any) -> None:
    mail = MailSettings(
        transport="ews",
        ews={"server": "mail.hyvaks.example", "auth": "ntlm", "username": USER},
    )
    assert isinstance(make_transport(mail, tmp_path), EwsTransport)


@pytest.mark.prefect
def test_password_from_a_prefect_secret_block(
    prefect_api: None, exchange: tuple[Exchange, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.blocks.system import Secret

    state, port = exchange
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    name = f"hytetu-ews-test-{uuid.uuid4().hex[:8]}"
    Secret(value=PASSWORD).save(name)
    raw = raw_message(["hyte@konnevesi.example"])

    EwsTransport(settings(port, password_block=name)).send(raw, SENDER, [SENDER])

    assert list(state.sent_items.values()) == [raw]
    with pytest.raises(DeliveryError, match="no-such-block") as raised:
        EwsTransport(settings(port, password_block="no-such-block")).send(raw, SENDER, [SENDER])
    assert raised.value.permanent


def test_invitations_of_the_example_go_out_through_ews(
    exchange: tuple[Exchange, int], secrets: None, example: Any, sqlite_url: str, tmp_path: Any
) -> None:
    """The whole path: region.yaml chooses ews, the invitations phase sends through it,
    and a re-run finds nothing to send."""
    from conftest import helsinki

    from hytetu import phases

    state, port = exchange
    region = (example / "region.yaml").read_text(encoding="utf-8")
    mail = (
        "\nmail:\n  transport: ews\n  ews:\n"
        f"    server: 127.0.0.1\n    service_endpoint: http://127.0.0.1:{port}/EWS/Exchange.asmx\n"
        f"    auth: basic\n    username: '{USER}'\n    password_env: {PASSWORD_ENV}\n"
    )
    if "\nmail:" in region:
        region = region.split("\nmail:", 1)[0] + "\n"
    (example / "region.yaml").write_text(region + mail, encoding="utf-8")
    phases.load(example, sqlite_url)

    report = phases.run_invitations(helsinki("2025-10-02 07:00"), tmp_path / "out", sqlite_url)

    assert report.failed == []
    assert report.sent == report.did["requests"] == state.operations().count("CreateItem") > 0
    for raw in state.sent_items.values():
        msg = email.message_from_bytes(raw, policy=policy.default)
        assert msg["Subject"].startswith("Kutsu: Jämsä, Keuruu, Multia ja Petäjävesi")
        types = [part.get_content_type() for part in msg.walk()]
        assert {"text/plain", "text/html", "text/calendar"} <= set(types)
    again = phases.run_invitations(helsinki("2025-10-02 07:30"), tmp_path / "out", sqlite_url)
    assert again.sent == 0
    assert state.operations().count("CreateItem") == report.sent
