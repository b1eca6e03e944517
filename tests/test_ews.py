"""EwsTransport (exchangelib) against a local endpoint that speaks Exchange's EWS SOAP.

Exchange cannot run here, so a threading HTTP server on 127.0.0.1 answers the operations
exchangelib uses for this transport the way Exchange Server 2016 / Exchange Online do:
GetFolder for the distinguished root and sentitems folders, CreateItem with
MessageDisposition=SendAndSaveCopy (keeping the sent MIME as the "Sent Items" copy),
FindItem in sentitems restricted on message:InternetMessageId, an ErrorServerBusy SOAP fault
with BackOffMilliseconds, an ErrorInvalidRecipients response message, HTTP 401 for wrong
credentials, and the OAuth2 client-credentials token endpoint of the Microsoft identity
platform. The tests assert on the XML the server receives.
"""

from __future__ import annotations

import base64
import datetime as dt
import email
import json
import logging
import socket
import threading
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote_plus
from xml.etree import ElementTree as ET

import pytest

from hytetu.errors import DeliveryError
from hytetu.ews import EwsTransport
from hytetu.mail import MailSettings, build_message, make_transport
from hytetu.transport_settings import EwsSettings

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
T = "http://schemas.microsoft.com/exchange/services/2006/types"
E = "http://schemas.microsoft.com/exchange/services/2006/errors"
NS = {"s": SOAP, "m": M, "t": T}

SENDER = "hyte@hyvaks.example"
USER = "HYVAKS\\svc-hytetu"
PASSWORD = "Sal@sana-ÄÖ-ews-9!"  # noqa: S105 - a test secret, set through the environment
CLIENT_SECRET = "n0t-a-real~secret.Äö_42"  # noqa: S105 - likewise
PASSWORD_ENV = "HYTETU_TEST_EWS_PASSWORD"
SECRET_ENV = "HYTETU_TEST_EWS_CLIENT_SECRET"
TENANT = "00000000-0000-4000-8000-000000000001"
CLIENT_ID = "11111111-2222-4333-8444-555555555555"
SUBJECT = "Kutsu: Jämsä, Keuruu, Multia ja Petäjävesi 23.10.2025 – hyte-neuvottelu (äöå)"

_ENVELOPE = (
    '<?xml version="1.0" encoding="utf-8"?>'
    f'<s:Envelope xmlns:s="{SOAP}"><s:Header>'
    f'<h:ServerVersionInfo xmlns:h="{T}" MajorVersion="15" MinorVersion="1" '
    'MajorBuildNumber="2507" MinorBuildNumber="6" Version="V2017_07_11"/>'
    "</s:Header><s:Body>{body}</s:Body></s:Envelope>"
)


def _ok(operation: str, inner: str = "") -> str:
    return (
        f'<m:{operation}Response xmlns:m="{M}" xmlns:t="{T}"><m:ResponseMessages>'
        f'<m:{operation}ResponseMessage ResponseClass="Success">'
        f"<m:ResponseCode>NoError</m:ResponseCode>{inner}"
        f"</m:{operation}ResponseMessage></m:ResponseMessages></m:{operation}Response>"
    )


def _error(operation: str, code: str, text: str) -> str:
    return (
        f'<m:{operation}Response xmlns:m="{M}" xmlns:t="{T}"><m:ResponseMessages>'
        f'<m:{operation}ResponseMessage ResponseClass="Error">'
        f"<m:MessageText>{text}</m:MessageText><m:ResponseCode>{code}</m:ResponseCode>"
        f"<m:DescriptiveLinkKey>0</m:DescriptiveLinkKey><m:Items/>"
        f"</m:{operation}ResponseMessage></m:ResponseMessages></m:{operation}Response>"
    )


def _busy_fault(back_off_ms: int) -> str:
    return (
        f'<s:Fault><faultcode xmlns:a="{T}">a:ErrorServerBusy</faultcode>'
        '<faultstring xml:lang="en-US">The server cannot service this request right now. '
        "Try again later.</faultstring><detail>"
        f'<e:ResponseCode xmlns:e="{E}">ErrorServerBusy</e:ResponseCode>'
        f'<e:Message xmlns:e="{E}">The server cannot service this request right now. '
        "Try again later.</e:Message>"
        f'<t:MessageXml xmlns:t="{T}"><t:Value Name="BackOffMilliseconds">{back_off_ms}'
        "</t:Value></t:MessageXml></detail></s:Fault>"
    )


_FOLDERS = {  # distinguished id -> (element, class, display name)
    "root": ("t:Folder", None, "Top of Information Store"),
    "msgfolderroot": ("t:Folder", "IPF.Note", "Top of Information Store"),
    "sentitems": ("t:Folder", "IPF.Note", "Lähetetyt"),
}


@dataclass
class Exchange:
    """What the fake Exchange is told to do, and what it received."""

    auth: str = "basic"  # basic | oauth2
    busy_first: int = 0  # answer this many CreateItem calls with ErrorServerBusy
    invalid_recipients: set[str] = field(default_factory=set)
    requests: list[tuple[str, dict[str, str], ET.Element]] = field(default_factory=list)
    headers: list[ET.Element] = field(default_factory=list)  # SOAP headers, in order
    token_requests: list[dict[str, list[str]]] = field(default_factory=list)
    sent_items: dict[str, bytes] = field(default_factory=dict)  # Message-ID -> MIME
    token: str = field(default_factory=lambda: f"eyJ0eXAi.{uuid.uuid4().hex}.sig")

    def operations(self) -> list[str]:
        return [op for op, _, _ in self.requests]

    def body_of(self, operation: str) -> ET.Element:
        return next(body for op, _, body in self.requests if op == operation)

    # --- the wire ---------------------------------------------------------------------------

    def authorised(self, headers: dict[str, str]) -> bool:
        given = headers.get("Authorization", "")
        if self.auth == "oauth2":
            return given == f"Bearer {self.token}"
        # requests sends Basic credentials in Latin-1, as IIS reads them (the ANSI code page)
        expected = base64.b64encode(f"{USER}:{PASSWORD}".encode("latin-1")).decode()
        return given == f"Basic {expected}"

    def token_endpoint(self, form: dict[str, list[str]]) -> tuple[int, str]:
        self.token_requests.append(form)
        if (
            form.get("grant_type") == ["client_credentials"]
            and form.get("client_id") == [CLIENT_ID]
            and form.get("client_secret") == [CLIENT_SECRET]
        ):
            reply = {"token_type": "Bearer", "expires_in": 3599, "access_token": self.token}
            return 200, json.dumps(reply)
        return 401, json.dumps(
            {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid secret."}
        )

    def soap(self, headers: dict[str, str], payload: bytes) -> tuple[int, str]:
        envelope = ET.fromstring(payload)
        body = envelope.find("s:Body", NS)
        assert body is not None
        operation_elem = body[0]
        operation = operation_elem.tag.split("}", 1)[1]
        self.requests.append((operation, headers, operation_elem))
        soap_header = envelope.find("s:Header", NS)
        self.headers.append(soap_header if soap_header is not None else ET.Element("none"))
        if operation == "GetFolder":
            folders = ""
            for f in operation_elem.iterfind(".//t:DistinguishedFolderId", NS):
                tag, folder_class, name = _FOLDERS[f.attrib["Id"]]
                klass = f"<t:FolderClass>{folder_class}</t:FolderClass>" if folder_class else ""
                folders += (
                    f'<{tag}><t:FolderId Id="AAMk-{f.attrib["Id"]}" ChangeKey="AQAAABYA"/>'
                    f"{klass}<t:DisplayName>{name}</t:DisplayName>"
                    f"<t:TotalCount>{len(self.sent_items)}</t:TotalCount>"
                    "<t:ChildFolderCount>0</t:ChildFolderCount>"
                    f"<t:UnreadCount>0</t:UnreadCount></{tag}>"
                )
            return 200, _ok("GetFolder", f"<m:Folders>{folders}</m:Folders>")
        if operation == "CreateItem":
            if self.busy_first:
                self.busy_first -= 1
                return 500, _busy_fault(100)
            mime = operation_elem.find(".//t:Message/t:MimeContent", NS)
            assert mime is not None and mime.text
            raw = base64.b64decode(mime.text)
            addresses = [
                a.text or ""
                for a in operation_elem.iterfind(".//t:Message//t:Mailbox/t:EmailAddress", NS)
            ]
            bad = [a for a in addresses if a in self.invalid_recipients]
            if bad:
                return 200, _error(
                    "CreateItem",
                    "ErrorInvalidRecipients",
                    f"At least one recipient isn't valid., Recipient '{bad[0]}' is not resolved.",
                )
            parsed = email.message_from_bytes(raw, policy=policy.default)
            self.sent_items[str(parsed["Message-ID"])] = raw
            return 200, _ok("CreateItem", "<m:Items/>")
        if operation == "FindItem":
            constant = operation_elem.find(".//t:IsEqualTo/t:FieldURIOrConstant/t:Constant", NS)
            uri = operation_elem.find(".//t:IsEqualTo/t:FieldURI", NS)
            assert uri is not None and uri.attrib["FieldURI"] == "message:InternetMessageId"
            assert constant is not None
            hit = constant.attrib["Value"] in self.sent_items
            items = '<t:Message><t:ItemId Id="AAMk-item-1" ChangeKey="CQAAABYA"/></t:Message>'
            root = (
                f'<m:RootFolder IndexedPagingOffset="{int(hit)}" TotalItemsInView="{int(hit)}" '
                f'IncludesLastItemInRange="true"><t:Items>{items if hit else ""}</t:Items>'
                "</m:RootFolder>"
            )
            return 200, _ok("FindItem", root)
        raise AssertionError(f"the fake Exchange does not know {operation}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def exchange() -> Iterator[tuple[Exchange, int]]:
    state = Exchange()
    failures: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def do_POST(self) -> None:
            payload = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            headers = {k: v for k, v in self.headers.items()}
            try:
                if self.path.endswith("/oauth2/v2.0/token"):
                    assert self.path == f"/{TENANT}/oauth2/v2.0/token"
                    form = parse_qs(payload.decode())
                    status, text = state.token_endpoint(form)
                    self._answer(status, text, "application/json; charset=utf-8")
                    return
                assert self.path == "/EWS/Exchange.asmx"
                if not state.authorised(headers):
                    self._answer(401, "", "text/html", {"WWW-Authenticate": 'Basic realm="ews"'})
                    return
                status, body = state.soap(headers, payload)
            except Exception:
                failures.append(traceback.format_exc())
                self._answer(400, "bad request", "text/plain")
                return
            self._answer(status, _ENVELOPE.format(body=body), "text/xml; charset=utf-8")

        def _answer(
            self, status: int, text: str, content_type: str, extra: dict[str, str] | None = None
        ) -> None:
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

    port = _free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state, port
    server.shutdown()
    server.server_close()
    thread.join(5)
    assert not failures, "\n".join(failures)


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    monkeypatch.setenv(SECRET_ENV, CLIENT_SECRET)
    # oauthlib refuses plain http unless told; the test endpoint is http on loopback
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


def settings(port: int, **overrides: Any) -> EwsSettings:
    values: dict[str, Any] = {
        "server": "127.0.0.1",
        "service_endpoint": f"http://127.0.0.1:{port}/EWS/Exchange.asmx",
        "auth": "basic",
        "username": USER,
        "password_env": PASSWORD_ENV,
        "client_secret_env": SECRET_ENV,
        "max_wait_seconds": 5,
    }
    values.update(overrides)
    return EwsSettings(**values)


def oauth_settings(port: int, **overrides: Any) -> EwsSettings:
    return settings(
        port,
        auth="oauth2",
        username=None,
        tenant_id=TENANT,
        client_id=CLIENT_ID,
        authority=f"http://127.0.0.1:{port}",
        **overrides,
    )


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
