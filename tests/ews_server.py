"""A local endpoint that speaks Exchange's EWS SOAP, for the EWS transport and reader tests.

Exchange cannot run here, so a threading HTTP server on 127.0.0.1 answers the operations
exchangelib uses the way Exchange Server 2016 / Exchange Online do. For sending: GetFolder
for the distinguished root and sentitems folders, CreateItem with
MessageDisposition=SendAndSaveCopy (keeping the sent MIME as the "Sent Items" copy),
FindItem in sentitems restricted on message:InternetMessageId, an ErrorServerBusy SOAP
fault with BackOffMilliseconds, an ErrorInvalidRecipients response message, HTTP 401 for
wrong credentials, and the OAuth2 client-credentials token endpoint of the Microsoft
identity platform. For reading the mailbox (``Exchange.deliver``): GetFolder inbox,
FindFolder (shallow, on folder:DisplayName), CreateFolder, FindItem in a folder (ids, size,
categories), GetItem with MimeContent, MoveItem (a new id, as Exchange gives) and UpdateItem
(is_read, categories). Nothing is ever deleted.

Use the fixtures by importing them into a test module: ``from ews_server import exchange``.
"""

from __future__ import annotations

import base64
import email
import json
import socket
import threading
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs
from xml.etree import ElementTree as ET

import pytest

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
