"""A local stand-in for Microsoft Graph and the Entra ID token service, for tests.

Graph cannot run here; this server speaks its wire format, over HTTPS on 127.0.0.1 (msal
accepts only https authorities) with a self-signed certificate made for the test run:

- Entra ID: ``GET /{tenant}/v2.0/.well-known/openid-configuration`` (msal's tenant
  discovery), ``GET /common/discovery/instance`` (instance metadata, for completeness:
  the transport turns instance discovery off) and ``POST /{tenant}/oauth2/v2.0/token``
  (client credentials with a client secret or a certificate-signed client assertion).
- Graph v1.0: ``POST /users/{id}/sendMail`` with base64 MIME as ``text/plain`` (202),
  ``GET /users/{id}/mailFolders('SentItems')/messages?$filter=internetMessageId eq '...'``.
  Not served: drafts and upload sessions, which the transport does not use (it refuses
  messages over 4 MB before sending; see hytetu.graph).
- Graph v1.0, the mailbox the readers read (``deliver(mailbox, raw)`` puts a message in
  its Inbox): ``GET .../mailFolders/{id}/messages/delta`` (``$select``, pages of
  ``page_size`` with ``@odata.nextLink`` ``$skiptoken``, a last page with
  ``@odata.deltaLink`` ``$deltatoken``; a later round returns what was added or changed
  and ``@removed`` for what left the folder; ``expire_delta_links()`` makes Graph answer
  410 ``SyncStateNotFound``), ``GET .../messages/{id}/$value`` (the MIME),
  ``POST .../messages/{id}/move`` (201, a new id, as without immutable ids),
  ``PATCH .../messages/{id}`` (isRead, categories), ``GET .../mailFolders`` and
  ``.../childFolders`` with ``$filter=displayName eq '...'``, ``POST`` to create one (409
  ``ErrorFolderExists`` when it exists). Nothing is ever deleted.

Faults are scripted per endpoint (``inject("sendMail", Reply(429, headers=...))``), tokens
can be expired on the server (``expire_tokens()``), and every request is recorded.

Reuse from another test module::

    if TYPE_CHECKING:
        from graph_server import GraphServer

    pytest_plugins = ["graph_server"]  # the fixture; not imported at run time (see below)

    def test_x(graph_server: GraphServer, tmp_path):
        mail = MailSettings(transport="graph", graph=graph_server.settings())
        transport = make_transport(mail, tmp_path)   # -> GraphTransport
        ...
        assert graph_server.sent == [raw]            # decoded MIME, in order
"""

from __future__ import annotations

import base64
import datetime as dt
import email
import ipaddress
import json
import re
import secrets
import ssl
import tempfile
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import policy
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

from hytetu.transport_settings import GraphSettings

TENANT = "0b6a1d3e-5f4c-4e8a-9d2b-7c1f0e3a5b69"
CLIENT_ID = "4f2c8e1a-6b3d-4c7e-a9f0-1d2e3b4c5a6f"
CLIENT_SECRET = "Gr4ph~salaisuus.ÄÖ-x9Q_kJ2"  # noqa: S105 - a test secret, via the environment
SECRET_ENV = "HYTETU_TEST_GRAPH_CLIENT_SECRET"
SENT_ITEMS = re.compile(
    r"^/v1\.0/users/([^/]+)/mailFolders(?:\('SentItems'\)|/SentItems)/messages$"
)
SEND_MAIL = re.compile(r"^/v1\.0/users/([^/]+)/sendMail$")
DELTA = re.compile(r"^/v1\.0/users/([^/]+)/mailFolders/([^/]+)/messages/delta$")
VALUE = re.compile(r"^/v1\.0/users/([^/]+)/messages/([^/]+)/\$value$")
MOVE = re.compile(r"^/v1\.0/users/([^/]+)/messages/([^/]+)/move$")
MESSAGE = re.compile(r"^/v1\.0/users/([^/]+)/messages/([^/]+)$")
FOLDERS = re.compile(r"^/v1\.0/users/([^/]+)/mailFolders(?:/([^/]+)/childFolders)?$")
NAME_FILTER = re.compile(r"^displayName eq '((?:[^']|'')*)'$")
FILTER = re.compile(r"^internetMessageId eq '((?:[^']|'')*)'$")


@dataclass
class Request:
    method: str
    path: str  # percent-decoded
    raw_path: str  # as sent
    query: dict[str, str]  # percent-decoded, '+' kept as '+' as Graph does
    headers: dict[str, str]
    body: bytes
    endpoint: str

    @property
    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode()))


@dataclass
class Reply:
    """A scripted answer: ``body`` may be a function of the request (to echo it)."""

    status: int
    body: dict[str, Any] | Callable[[Request], dict[str, Any]] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def graph_error(status: int, code: str, message: str, **headers: str) -> Reply:
    """A Graph error in its real shape."""
    inner = {"date": "2025-11-20T09:00:00", "request-id": str(uuid.uuid4())}
    body = {"error": {"code": code, "message": message, "innerError": inner}}
    return Reply(status, body, headers)


class GraphServer:
    """The fake's state. ``url`` is both the authority and the Graph host. What a test needs
    is reachable from the fixture's object, so test modules need not import this module
    (pytest warns when a module imported before is then loaded as a plugin)."""

    Reply = Reply
    error = staticmethod(graph_error)
    client_id = CLIENT_ID
    secret_env = SECRET_ENV

    def __init__(self, cert: Path, key: Path, *, client_certificate: Any = None) -> None:
        self.ca_bundle = str(cert)
        self.secret = CLIENT_SECRET
        self.client_certificate = client_certificate  # x509 cert for assertion auth
        self.token_lifetime = 3599
        self.sent: list[bytes] = []  # decoded MIME of every accepted sendMail, in order
        self.sent_items: dict[str, list[bytes]] = {}  # mailbox (lower case) -> MIME
        self.requests: list[Request] = []
        self.events: list[str] = []  # "POST sendMail 202", ...; tests may add their own
        self.tokens: dict[str, bool] = {}  # issued token -> still valid
        self._scripts: dict[str, deque[Reply]] = {}
        self._lock = threading.Lock()
        # the mailbox the readers read: message id -> its state; folder id -> folder
        self.messages: dict[str, dict[str, Any]] = {}
        self.folders: dict[str, dict[str, Any]] = {
            "inbox": {"id": "AAMkAGInbox", "displayName": "Saapuneet", "parent": "root"},
            "sentitems": {"id": "AAMkAGSent", "displayName": "Lähetetyt", "parent": "root"},
        }
        self.page_size = 10
        self._sequence = 0  # a change counter: every added or changed message gets the next
        self._delta_tokens: dict[str, tuple[str, int, frozenset[str]]] = {}
        self._skip_tokens: dict[str, tuple[str, list[dict[str, Any]], int, frozenset[str]]] = {}
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> GraphServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    # --- for tests ---------------------------------------------------------------------

    def settings(self, **overrides: Any) -> GraphSettings:
        """GraphSettings pointing at this server (the secret is in ``SECRET_ENV``)."""
        values: dict[str, Any] = {
            "tenant_id": TENANT,
            "client_id": CLIENT_ID,
            "client_secret_env": SECRET_ENV,
            "authority": self.url,
            "endpoint": f"{self.url}/v1.0",
            "ca_bundle": self.ca_bundle,
            "timeout": 10.0,
        }
        values.update(overrides)
        return GraphSettings(**values)

    def inject(self, endpoint: str, *replies: Reply) -> None:
        """Answer the next requests to ``endpoint`` ("token", "sendMail", "sentItems") so."""
        with self._lock:
            self._scripts.setdefault(endpoint, deque()).extend(replies)

    def expire_tokens(self) -> None:
        """Every token issued so far is now expired (as after a revocation or a clock jump)."""
        with self._lock:
            for token in self.tokens:
                self.tokens[token] = False

    def calls(self, endpoint: str) -> list[Request]:
        return [r for r in self.requests if r.endpoint == endpoint]

    def put_in_sent_items(self, mailbox: str, raw: bytes) -> None:
        """As if a message had gone out earlier (say, before a crash)."""
        with self._lock:
            self.sent_items.setdefault(mailbox.lower(), []).append(raw)

    def deliver(self, raw: bytes, folder: str = "inbox") -> str:
        """A message arrives in ``folder`` (an id or "inbox"); returns its Graph id."""
        with self._lock:
            self._sequence += 1
            message_id = "AAMkAGI2" + secrets.token_urlsafe(30).replace("_", "-") + "="
            self.messages[message_id] = {
                "raw": raw,
                "folder": self._folder_key(folder),
                "isRead": False,
                "categories": [],
                "changed": self._sequence,
                "received": dt.datetime(2025, 11, 20, 8, 0, tzinfo=dt.UTC)
                + dt.timedelta(minutes=self._sequence),
            }
            return message_id

    def folder_named(self, name: str) -> str | None:
        """The id of the folder with this display name, or None."""
        return next((f["id"] for f in self.folders.values() if f["displayName"] == name), None)

    def in_folder(self, folder: str) -> list[dict[str, Any]]:
        key = self._folder_key(folder)
        return [m for m in self.messages.values() if m["folder"] == key]

    def expire_delta_links(self) -> None:
        """Graph forgets every sync state (as after a while, or a mailbox move)."""
        with self._lock:
            self._delta_tokens.clear()
            self._skip_tokens.clear()

    def _folder_key(self, folder: str) -> str:
        for key, f in self.folders.items():
            if folder in (key, f["id"]) or folder.lower() == key:
                return key
        raise KeyError(folder)

    # --- the mailbox -------------------------------------------------------------------

    def _mailbox(self, request: Request) -> tuple[int, Any, dict[str, str]]:
        endpoint = request.endpoint
        if endpoint == "delta":
            return self._delta(request)
        if endpoint in ("folders", "createFolder"):
            return self._folders(request)
        match = (MOVE if endpoint == "move" else VALUE if endpoint == "value" else MESSAGE).match(
            request.path
        )
        assert match is not None
        message_id = match.group(2)
        message = self.messages.get(message_id)
        if message is None:
            return self._error(
                404, "ErrorItemNotFound", "The specified object was not found in the store."
            )
        if endpoint == "value":
            return 200, message["raw"], {"Content-Type": "text/plain"}
        if endpoint == "move":
            destination = json.loads(request.body or b"{}").get("destinationId", "")
            try:
                folder = self._folder_key(destination)
            except KeyError:
                return self._error(400, "ErrorInvalidIdMalformed", "Id is malformed.")
            del self.messages[message_id]
            self._sequence += 1
            new_id = "AAMkAGI2" + secrets.token_urlsafe(30).replace("_", "-") + "="
            message.update(folder=folder, changed=self._sequence)
            self.messages[new_id] = message
            return 201, self._resource(new_id, message, None), {}
        # PATCH
        patch = json.loads(request.body or b"{}")
        unknown = set(patch) - {"isRead", "categories"}
        if unknown:
            return self._error(400, "ErrorInvalidProperty", f"Unknown: {sorted(unknown)}")
        message.update(patch)
        self._sequence += 1
        message["changed"] = self._sequence
        return 200, self._resource(message_id, message, None), {}

    def _resource(self, message_id: str, message: dict[str, Any], select: str | None) -> dict:
        headers = email.message_from_bytes(message["raw"], policy=policy.compat32)
        full = {
            "@odata.type": "#microsoft.graph.message",
            "@odata.etag": f'W/"CQAAABYAAAA{message["changed"]}"',
            "id": message_id,
            "internetMessageId": " ".join(str(headers["Message-ID"] or "").split()),
            "receivedDateTime": message["received"].strftime("%Y-%m-%dT%H:%M:%SZ"),
            "subject": str(headers["Subject"] or ""),
            "isRead": message["isRead"],
            "categories": list(message["categories"]),
            "parentFolderId": self.folders[message["folder"]]["id"],
        }
        if select is None:
            return full
        wanted = {"@odata.type", "@odata.etag", "id", *select.split(",")}
        return {k: v for k, v in full.items() if k in wanted}

    def _delta(self, request: Request) -> tuple[int, Any, dict[str, str]]:
        match = DELTA.match(request.path)
        assert match is not None
        base = f"{self.url}{request.path}"
        if "$skiptoken" in request.query:
            saved = self._skip_tokens.pop(request.query["$skiptoken"], None)
            if saved is None:
                return self._gone()
            folder, rest, sequence, present = saved
        else:
            try:
                folder = self._folder_key(match.group(2))
            except KeyError:
                return self._error(404, "ErrorItemNotFound", "The specified folder was not found.")
            if "$deltatoken" in request.query:
                state = self._delta_tokens.get(request.query["$deltatoken"])
                if state is None:
                    return self._gone()
                _folder, since, before = state
            else:
                since, before = 0, frozenset()
            select = request.query.get("$select")
            now = {i: m for i, m in self.messages.items() if m["folder"] == folder}
            rest = [self._resource(i, m, select) for i, m in now.items() if m["changed"] > since]
            rest += [
                {
                    "@odata.type": "#microsoft.graph.message",
                    "id": i,
                    "@removed": {"reason": "deleted"},
                }
                for i in sorted(before - set(now))
            ]
            sequence, present = self._sequence, frozenset(now)
        page, rest = rest[: self.page_size], rest[self.page_size :]
        context = f"{self.url}/v1.0/$metadata#Collection(message)"
        body: dict[str, Any] = {"@odata.context": context, "value": page}
        if rest:
            token = secrets.token_urlsafe(16)
            self._skip_tokens[token] = (folder, rest, sequence, present)
            body["@odata.nextLink"] = f"{base}?$skiptoken={token}"
        else:
            token = secrets.token_urlsafe(16)
            self._delta_tokens[token] = (folder, sequence, present)
            body["@odata.deltaLink"] = f"{base}?$deltatoken={token}"
        return 200, body, {}

    def _gone(self) -> tuple[int, Any, dict[str, str]]:
        return self._error(
            410,
            "SyncStateNotFound",
            "The sync state generation is not found. The sync state may have expired "
            "or be corrupt. Use a new sync state.",
        )

    def _folders(self, request: Request) -> tuple[int, Any, dict[str, str]]:
        match = FOLDERS.match(request.path)
        assert match is not None
        parent = self._folder_key(match.group(2)) if match.group(2) else "root"
        children = [f for f in self.folders.values() if f["parent"] == parent]
        if request.method == "GET":
            name = NAME_FILTER.match(request.query.get("$filter", ""))
            if name:
                wanted = name.group(1).replace("''", "'")
                children = [f for f in children if f["displayName"] == wanted]
            value = [
                {
                    "id": f["id"],
                    "displayName": f["displayName"],
                    "parentFolderId": self.folders[parent]["id"]
                    if parent != "root"
                    else "AAMkRoot",
                    "childFolderCount": 0,
                    "unreadItemCount": 0,
                    "totalItemCount": len(self.in_folder(f["id"])),
                    "isHidden": False,
                }
                for f in children
            ]
            return (
                200,
                {"@odata.context": f"{self.url}/v1.0/$metadata#mailFolders", "value": value},
                {},
            )
        name = str(json.loads(request.body or b"{}").get("displayName", ""))
        if any(f["displayName"].lower() == name.lower() for f in children):
            return self._error(
                409, "ErrorFolderExists", "A folder with the specified name already exists."
            )
        folder_id = "AAMkAGFolder" + secrets.token_hex(8)
        self.folders[folder_id] = {"id": folder_id, "displayName": name, "parent": parent}
        return 201, {"id": folder_id, "displayName": name, "childFolderCount": 0}, {}

    # --- the endpoints -----------------------------------------------------------------

    def handle(self, request: Request) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            self.requests.append(request)
            if request.endpoint in ("openid", "instance"):
                return 200, self._metadata(request), {}
            if request.endpoint == "unknown":
                return self._error(404, "UnknownError", "no such endpoint in the fake")
            if request.endpoint != "token":
                denied = self._check_token(request)
                if denied:
                    return denied
            script = self._scripts.get(request.endpoint)
            if script:
                reply = script.popleft()
                body = reply.body(request) if callable(reply.body) else reply.body
                return reply.status, body, dict(reply.headers)
            if request.endpoint == "token":
                return self._token(request)
            if request.endpoint == "sendMail":
                return self._send_mail(request)
            if request.endpoint == "sentItems":
                return self._sent_items(request)
            return self._mailbox(request)

    def _metadata(self, request: Request) -> dict[str, Any]:
        base = f"{self.url}/{TENANT}"
        if request.endpoint == "instance":
            return {
                "tenant_discovery_endpoint": f"{base}/v2.0/.well-known/openid-configuration",
                "api-version": "1.1",
                "metadata": [],
            }
        return {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "issuer": f"{base}/v2.0",
            "jwks_uri": f"{self.url}/{TENANT}/discovery/v2.0/keys",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "tenant_region_scope": "EU",
        }

    def _token(self, request: Request) -> tuple[int, dict[str, Any], dict[str, str]]:
        form = request.form

        def refuse(status: int, error: str, description: str) -> tuple[int, dict[str, Any], dict]:
            return status, {"error": error, "error_description": description}, {}

        if form.get("grant_type") != "client_credentials":
            return refuse(400, "unsupported_grant_type", "AADSTS70003: grant type")
        if not form.get("scope", "").endswith("/.default"):
            return refuse(400, "invalid_scope", "AADSTS1002012: scope must end in /.default")
        if form.get("client_id") != CLIENT_ID:
            return refuse(400, "unauthorized_client", "AADSTS700016: Application not found")
        if "client_assertion" in form:
            if not self._assertion_ok(form):
                return refuse(401, "invalid_client", "AADSTS700027: assertion not valid")
        elif form.get("client_secret") != self.secret:
            return refuse(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
        token = "eyJ0eXAiOiJKV1Qi." + secrets.token_urlsafe(24)
        self.tokens[token] = True
        lifetime = self.token_lifetime
        body = {
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": token,
        }
        return 200, body, {}

    def _assertion_ok(self, form: dict[str, str]) -> bool:
        import jwt  # PyJWT, msal's own dependency

        if self.client_certificate is None:
            return False
        if form.get("client_assertion_type") != (
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        ):
            return False
        try:
            claims = jwt.decode(
                form["client_assertion"],
                self.client_certificate.public_key(),
                algorithms=["RS256", "PS256"],
                audience=f"{self.url}/{TENANT}/oauth2/v2.0/token",
            )
        except jwt.PyJWTError:
            return False
        return bool(claims.get("iss") == CLIENT_ID == claims.get("sub"))

    def _check_token(self, request: Request) -> tuple[int, dict[str, Any], dict] | None:
        header = request.headers.get("authorization", "")
        token = header[len("Bearer ") :] if header.startswith("Bearer ") else ""
        if token not in self.tokens:
            return self._error(
                401, "InvalidAuthenticationToken", "Access token is empty or malformed."
            )
        if not self.tokens[token]:
            return self._error(
                401,
                "InvalidAuthenticationToken",
                "Lifetime validation failed, the token is expired.",
            )
        return None

    def _send_mail(self, request: Request) -> tuple[int, dict[str, Any] | None, dict]:
        if request.headers.get("content-type", "").split(";")[0].strip() != "text/plain":
            return self._error(
                400, "RequestBodyRead", "Cannot read the request body: JSON expected."
            )
        try:
            raw = base64.b64decode(request.body, validate=True)
        except ValueError:
            return self._error(
                400,
                "ErrorMimeContentInvalidBase64String",
                "Invalid base64 string for MIME content.",
            )
        message = email.message_from_bytes(raw, policy=policy.default)
        if not any(str(v).strip() for h in ("To", "Cc", "Bcc") for v in message.get_all(h, [])):
            return self._error(
                400, "ErrorInvalidRecipients", "At least one recipient is not valid."
            )
        mailbox = unquote(SEND_MAIL.match(request.path).group(1)).lower()  # type: ignore[union-attr]
        self.sent.append(raw)
        self.sent_items.setdefault(mailbox, []).append(raw)
        return 202, None, {}

    def _sent_items(self, request: Request) -> tuple[int, dict[str, Any], dict]:
        match = FILTER.match(request.query.get("$filter", ""))
        if not match:
            return self._error(400, "BadRequest", "Invalid filter clause")
        wanted = match.group(1).replace("''", "'")
        mailbox = unquote(SENT_ITEMS.match(request.path).group(1)).lower()  # type: ignore[union-attr]
        found = []
        for raw in self.sent_items.get(mailbox, []):
            headers = email.message_from_bytes(raw, policy=policy.compat32)
            if " ".join(str(headers["Message-ID"]).split()) == wanted:
                found.append({"id": "AAMkAD" + secrets.token_hex(8), "internetMessageId": wanted})
        top = int(request.query.get("$top", "10"))
        context = f"{self.url}/v1.0/$metadata#users('{mailbox}')/mailFolders('SentItems')/messages"
        return 200, {"@odata.context": context, "value": found[:top]}, {}

    @staticmethod
    def _error(status: int, code: str, message: str) -> tuple[int, dict[str, Any], dict]:
        reply = graph_error(status, code, message)
        return status, reply.body, reply.headers  # type: ignore[return-value]


def _endpoint(method: str, path: str) -> str:
    if path.endswith("/.well-known/openid-configuration") and method == "GET":
        return "openid"
    if path == "/common/discovery/instance" and method == "GET":
        return "instance"
    if path == f"/{TENANT}/oauth2/v2.0/token" and method == "POST":
        return "token"
    if SEND_MAIL.match(path) and method == "POST":
        return "sendMail"
    if SENT_ITEMS.match(path) and method == "GET":
        return "sentItems"
    if DELTA.match(path) and method == "GET":
        return "delta"
    if VALUE.match(path) and method == "GET":
        return "value"
    if MOVE.match(path) and method == "POST":
        return "move"
    if MESSAGE.match(path) and method == "PATCH":
        return "patch"
    if FOLDERS.match(path):
        return "folders" if method == "GET" else "createFolder"
    return "unknown"


def _handler(server: GraphServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            path = unquote(parts.path)
            query = {
                unquote(k): unquote(v)
                for k, _, v in (p.partition("=") for p in parts.query.split("&") if p)
            }
            request = Request(
                method=self.command,
                path=path,
                raw_path=self.path,
                query=query,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                endpoint=_endpoint(self.command, path),
            )
            status, payload, headers = server.handle(request)
            server.events.append(f"{self.command} {request.endpoint} {status}")
            if isinstance(payload, bytes):  # $value: the MIME as it is
                data = payload
            else:
                data = json.dumps(payload).encode() if payload is not None else b""
            self.send_response(status)
            if request.endpoint not in ("token", "openid", "instance"):
                self.send_header("request-id", str(uuid.uuid4()))
            if data and not isinstance(payload, bytes):
                self.send_header("Content-Type", "application/json; charset=utf-8")
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@lru_cache(maxsize=1)
def tls_files() -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made once per test run: (cert, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hytetu fake graph")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = Path(tempfile.mkdtemp(prefix="hytetu-graph-tls-"))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def graph_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[GraphServer]:
    """A running fake Graph with the client secret in its environment variable."""
    monkeypatch.setenv(SECRET_ENV, CLIENT_SECRET)
    server = GraphServer(*tls_files()).start()
    try:
        yield server
    finally:
        server.stop()
