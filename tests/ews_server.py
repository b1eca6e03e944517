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
import datetime as dt
import email
import json
import secrets as random_tokens
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
from xml.sax.saxutils import escape

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
    "inbox": ("t:Folder", "IPF.Note", "Saapuneet"),
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
    # the mailbox the reader reads: item id -> state; folder id -> (display name, parent id)
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    folders: dict[str, tuple[str, str]] = field(
        default_factory=lambda: {
            "AAMk-msgfolderroot": ("Top of Information Store", "AAMk-root"),
            "AAMk-inbox": ("Saapuneet", "AAMk-msgfolderroot"),
            "AAMk-sentitems": ("Lähetetyt", "AAMk-msgfolderroot"),
        }
    )

    def deliver(self, raw: bytes, folder: str = "AAMk-inbox") -> str:
        """A message arrives in ``folder``; returns its item id."""
        item_id = "AAMkAD" + random_tokens.token_urlsafe(40) + "AAA="
        self.items[item_id] = {
            "raw": raw,
            "folder": folder,
            "is_read": False,
            "categories": [],
            "changekey": "CQAAABYA" + random_tokens.token_hex(4),
            "received": dt.datetime(2025, 11, 20, 6, 0, tzinfo=dt.UTC)
            + dt.timedelta(minutes=len(self.items)),
        }
        return item_id

    def folder_named(self, name: str) -> str | None:
        return next((i for i, (n, _p) in self.folders.items() if n == name), None)

    def in_folder(self, folder: str) -> list[dict[str, Any]]:
        return [i for i in self.items.values() if i["folder"] == folder]

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
        if operation in _MAILBOX_OPERATIONS:
            return 200, getattr(self, f"_{operation}")(operation_elem)
        if operation == "FindItem" and not _restricted(operation_elem):
            return 200, self._find_items(operation_elem)
        if operation == "GetFolder":
            answers = []  # one response message per folder asked for, as Exchange sends
            for f in operation_elem.find("m:FolderIds", NS) or []:
                if f.tag == f"{{{T}}}FolderId" and f.attrib["Id"] in self.folders:
                    answers.append(
                        ("Success", f"<m:Folders>{self._folder_xml(f.attrib['Id'])}</m:Folders>")
                    )
                    continue
                if f.attrib.get("Id") not in _FOLDERS or f.tag != f"{{{T}}}DistinguishedFolderId":
                    answers.append(("Error", "ErrorFolderNotFound"))
                    continue
                tag, folder_class, name = _FOLDERS[f.attrib["Id"]]
                klass = f"<t:FolderClass>{folder_class}</t:FolderClass>" if folder_class else ""
                folders = (
                    f'<{tag}><t:FolderId Id="AAMk-{f.attrib["Id"]}" ChangeKey="AQAAABYA"/>'
                    f"{klass}<t:DisplayName>{name}</t:DisplayName>"
                    f"<t:TotalCount>{len(self.sent_items)}</t:TotalCount>"
                    "<t:ChildFolderCount>0</t:ChildFolderCount>"
                    f"<t:UnreadCount>0</t:UnreadCount></{tag}>"
                )
                answers.append(("Success", f"<m:Folders>{folders}</m:Folders>"))
            messages = "".join(
                f'<m:GetFolderResponseMessage ResponseClass="Success"><m:ResponseCode>NoError'
                f"</m:ResponseCode>{inner}</m:GetFolderResponseMessage>"
                if outcome == "Success"
                else '<m:GetFolderResponseMessage ResponseClass="Error"><m:MessageText>The '
                "specified folder could not be found in the store.</m:MessageText><m:ResponseCode>"
                "ErrorFolderNotFound</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>"
                "</m:GetFolderResponseMessage>"
                for outcome, inner in answers
            )
            return 200, (
                f'<m:GetFolderResponse xmlns:m="{M}" xmlns:t="{T}"><m:ResponseMessages>'
                f"{messages}</m:ResponseMessages></m:GetFolderResponse>"
            )
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

    # --- the mailbox ------------------------------------------------------------------------

    def _folder_id(self, elem: ET.Element | None) -> str:
        """The folder a FolderId or DistinguishedFolderId element names."""
        assert elem is not None
        for child in elem.iter():
            tag = child.tag.split("}", 1)[-1]
            if tag == "FolderId":
                return child.attrib["Id"]
            if tag == "DistinguishedFolderId":
                return f"AAMk-{child.attrib['Id']}"
        raise AssertionError("no folder id")

    def _folder_xml(self, folder_id: str) -> str:
        name, parent = self.folders[folder_id]
        return (
            f'<t:Folder><t:FolderId Id="{folder_id}" ChangeKey="AQAAABYA"/>'
            f'<t:ParentFolderId Id="{parent}" ChangeKey="AQAAAA=="/>'
            f"<t:FolderClass>IPF.Note</t:FolderClass><t:DisplayName>{escape(name)}</t:DisplayName>"
            f"<t:TotalCount>{len(self.in_folder(folder_id))}</t:TotalCount>"
            "<t:ChildFolderCount>0</t:ChildFolderCount><t:UnreadCount>0</t:UnreadCount></t:Folder>"
        )

    def _FindFolder(self, elem: ET.Element) -> str:
        parent = self._folder_id(elem.find("m:ParentFolderIds", NS))
        assert elem.attrib.get("Traversal") == "Shallow"
        wanted = elem.find(".//t:IsEqualTo/t:FieldURIOrConstant/t:Constant", NS)
        uri = elem.find(".//t:IsEqualTo/t:FieldURI", NS)
        assert uri is not None and uri.attrib["FieldURI"] == "folder:DisplayName"
        assert wanted is not None
        # Exchange compares display names case-insensitively
        hits = [
            i
            for i, (name, p) in self.folders.items()
            if p == parent and name.lower() == wanted.attrib["Value"].lower()
        ]
        folders = "".join(self._folder_xml(i) for i in hits)
        root = (
            f'<m:RootFolder IndexedPagingOffset="{len(hits)}" TotalItemsInView="{len(hits)}" '
            f'IncludesLastItemInRange="true"><t:Folders>{folders}</t:Folders></m:RootFolder>'
        )
        return _ok("FindFolder", root)

    def _CreateFolder(self, elem: ET.Element) -> str:
        parent = self._folder_id(elem.find("m:ParentFolderId", NS))
        name_elem = elem.find("m:Folders/t:Folder/t:DisplayName", NS)
        assert name_elem is not None and name_elem.text
        name = name_elem.text
        if any(p == parent and n.lower() == name.lower() for n, p in self.folders.values()):
            return _error(
                "CreateFolder",
                "ErrorFolderExists",
                "A folder with the specified name already exists.",
            )
        folder_id = "AAMkADFolder" + random_tokens.token_hex(8) + "AAA="
        self.folders[folder_id] = (name, parent)
        inner = f'<m:Folders><t:Folder><t:FolderId Id="{folder_id}" ChangeKey="AQAAABYA"/>'
        return _ok("CreateFolder", inner + "</t:Folder></m:Folders>")

    def _find_items(self, elem: ET.Element) -> str:
        folder = self._folder_id(elem.find("m:ParentFolderIds", NS))
        view = elem.find("m:IndexedPageItemView", NS)
        offset = int(view.attrib.get("Offset", "0")) if view is not None else 0
        limit = int(view.attrib.get("MaxEntriesReturned", "1000")) if view is not None else 1000
        items = sorted(
            ((i, v) for i, v in self.items.items() if v["folder"] == folder),
            key=lambda kv: kv[1]["received"],
        )
        page = items[offset : offset + limit]
        xml = ""
        for item_id, item in page:
            categories = "".join(f"<t:String>{escape(c)}</t:String>" for c in item["categories"])
            xml += (
                f'<t:Message><t:ItemId Id="{item_id}" ChangeKey="{item["changekey"]}"/>'
                f"<t:Size>{len(item['raw']) + 1200}</t:Size>"  # Exchange counts its own props
                + (f"<t:Categories>{categories}</t:Categories>" if categories else "")
                + f"<t:DateTimeReceived>{item['received']:%Y-%m-%dT%H:%M:%SZ}"
                "</t:DateTimeReceived></t:Message>"
            )
        last = "true" if offset + len(page) >= len(items) else "false"
        root = (
            f'<m:RootFolder IndexedPagingOffset="{offset + len(page)}" '
            f'TotalItemsInView="{len(items)}" IncludesLastItemInRange="{last}">'
            f"<t:Items>{xml}</t:Items></m:RootFolder>"
        )
        return _ok("FindItem", root)

    def _each_item(self, operation: str, elem: ET.Element, answer: Any) -> str:
        """One response message per ItemId, as Exchange answers a batch."""
        messages = ""
        for item_id in elem.iterfind(".//t:ItemId", NS):
            item = self.items.get(item_id.attrib["Id"])
            if item is None:
                messages += (
                    f'<m:{operation}ResponseMessage ResponseClass="Error">'
                    "<m:MessageText>The specified object was not found in the store., "
                    "The process failed to get the correct properties.</m:MessageText>"
                    "<m:ResponseCode>ErrorItemNotFound</m:ResponseCode>"
                    f"<m:DescriptiveLinkKey>0</m:DescriptiveLinkKey><m:Items/>"
                    f"</m:{operation}ResponseMessage>"
                )
                continue
            messages += (
                f'<m:{operation}ResponseMessage ResponseClass="Success">'
                f"<m:ResponseCode>NoError</m:ResponseCode>{answer(item_id.attrib['Id'], item)}"
                f"</m:{operation}ResponseMessage>"
            )
        return (
            f'<m:{operation}Response xmlns:m="{M}" xmlns:t="{T}"><m:ResponseMessages>'
            f"{messages}</m:ResponseMessages></m:{operation}Response>"
        )

    def _GetItem(self, elem: ET.Element) -> str:
        """The fields asked for (exchangelib asks for complex ones such as Categories by
        GetItem after a FindItem for the ids), in the schema's order."""
        fields = {f.attrib["FieldURI"] for f in elem.iterfind(".//t:FieldURI", NS)}

        def answer(item_id: str, item: dict[str, Any]) -> str:
            xml = ""
            if "item:MimeContent" in fields:
                mime = base64.b64encode(item["raw"]).decode()
                xml += f'<t:MimeContent CharacterSet="UTF-8">{mime}</t:MimeContent>'
            xml += f'<t:ItemId Id="{item_id}" ChangeKey="{item["changekey"]}"/>'
            if "item:DateTimeReceived" in fields:
                received = f"{item['received']:%Y-%m-%dT%H:%M:%SZ}"
                xml += f"<t:DateTimeReceived>{received}</t:DateTimeReceived>"
            if "item:Size" in fields:
                xml += f"<t:Size>{len(item['raw']) + 1200}</t:Size>"  # Exchange adds its props
            if "item:Categories" in fields and item["categories"]:
                strings = "".join(f"<t:String>{escape(c)}</t:String>" for c in item["categories"])
                xml += f"<t:Categories>{strings}</t:Categories>"
            if "message:IsRead" in fields:
                xml += f"<t:IsRead>{str(item['is_read']).lower()}</t:IsRead>"
            return f"<m:Items><t:Message>{xml}</t:Message></m:Items>"

        return self._each_item("GetItem", elem, answer)

    def _MoveItem(self, elem: ET.Element) -> str:
        destination = self._folder_id(elem.find("m:ToFolderId", NS))
        if destination not in self.folders:
            return _error(
                "MoveItem",
                "ErrorFolderNotFound",
                "The specified folder could not be found in the store.",
            )
        moved: dict[str, str] = {}

        def answer(item_id: str, item: dict[str, Any]) -> str:
            new_id = (
                "AAMkAD" + random_tokens.token_urlsafe(40) + "AAA="
            )  # a new id, as Exchange gives
            moved[item_id] = new_id
            item["folder"] = destination
            ids = f'<t:ItemId Id="{new_id}" ChangeKey="{item["changekey"]}"/>'
            return f"<m:Items><t:Message>{ids}</t:Message></m:Items>"

        body = self._each_item("MoveItem", elem, answer)
        for old, new in moved.items():
            self.items[new] = self.items.pop(old)
        return body

    def _UpdateItem(self, elem: ET.Element) -> str:
        assert elem.attrib.get("ConflictResolution") in (
            "AutoResolve",
            "AlwaysOverwrite",
            "NeverOverwrite",
        )
        changes = {
            c.find("t:ItemId", NS).attrib["Id"]: c  # type: ignore[union-attr]
            for c in elem.iterfind("m:ItemChanges/t:ItemChange", NS)
        }

        def answer(item_id: str, item: dict[str, Any]) -> str:
            change = changes[item_id]
            for update in change.iterfind("t:Updates/t:SetItemField", NS):
                uri = update.find("t:FieldURI", NS)
                assert uri is not None
                if uri.attrib["FieldURI"] == "message:IsRead":
                    value = update.find("t:Message/t:IsRead", NS)
                    item["is_read"] = value is not None and value.text in (
                        "true",
                        "1",
                    )  # xs:boolean
                elif uri.attrib["FieldURI"] == "item:Categories":
                    item["categories"] = [
                        s.text or "" for s in update.iterfind("t:Message/t:Categories/t:String", NS)
                    ]
                else:
                    raise AssertionError(f"unexpected update of {uri.attrib['FieldURI']}")
            for delete in change.iterfind("t:Updates/t:DeleteItemField/t:FieldURI", NS):
                if delete.attrib["FieldURI"] == "item:Categories":
                    item["categories"] = []
            item["changekey"] = "CQAAABYA" + random_tokens.token_hex(4)
            return (
                f'<m:Items><t:Message><t:ItemId Id="{item_id}" ChangeKey="{item["changekey"]}"/>'
                "</t:Message></m:Items><m:ConflictResults><m:Count>0</m:Count></m:ConflictResults>"
            )

        return self._each_item("UpdateItem", elem, answer)


_MAILBOX_OPERATIONS = ("FindFolder", "CreateFolder", "GetItem", "MoveItem", "UpdateItem")


def _restricted(elem: ET.Element) -> bool:
    """A FindItem with a restriction: the transport's Sent Items lookup."""
    return elem.find("m:Restriction", NS) is not None


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
