"""Microsoft Graph transport: app-only ``sendMail`` of the exact MIME bytes, for counties on
Exchange Online (where EWS is switched off from 1 Oct 2026 and ends on 1 Apr 2027).

- Authentication: the client-credentials flow through ``msal`` (certificate, Prefect Secret
  block or environment variable); msal caches the token and fetches a new one when it nears
  expiry, and a 401 ``InvalidAuthenticationToken`` drops the cache for one fresh token and
  one more try.
- Sending: ``POST {endpoint}/users/{sender}/sendMail`` with the MIME message base64-encoded
  as ``text/plain``; Exchange saves it to Sent Items (the default for MIME sends), with the
  same Message-ID, calendar part and attachments as the other transports.
- Size: Graph refuses requests over 4 MB. A bigger message could only go through a draft
  plus upload sessions, which means taking the attachments out of the MIME and re-adding
  them as Graph attachments: no longer the exact message, and how Exchange keeps the
  Message-ID and the text/calendar part on that path cannot be checked here. So such a
  message fails with a permanent DeliveryError *before anything is sent*; send it by SMTP
  (Exchange Online takes up to 35 MB there) or make the attachments smaller.
- Throttling: 429 and 503 wait as long as ``Retry-After`` says; other transient 5xx and
  network errors back off exponentially with jitter; both bounded by ``max_attempts`` and
  ``max_wait_seconds``. Other 4xx are permanent and carry Graph's error code and message.
- Crash recovery: ``was_sent`` looks the Message-ID up in the sender's Sent Items.

Neither the client secret nor an access token ever reaches a log, a receipt or an error.
"""

from __future__ import annotations

import base64
import functools
import logging
import os
import random
import ssl
import threading
import time
from collections.abc import Callable
from email import policy
from email.parser import BytesHeaderParser
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from hytetu.errors import DeliveryError
from hytetu.mail import Receipt
from hytetu.secret_blocks import prefect_secret
from hytetu.transport_settings import GraphSettings

log = logging.getLogger(__name__)

#: Graph's limit on one request; a base64 MIME body above it is refused with 413.
MAX_REQUEST_BYTES = 4 * 1024 * 1024
_BACKOFF_BASE = 1.0  # seconds before the second attempt, doubled each time
_BACKOFF_CAP = 60.0
_RETRY_STATUSES = {429, 500, 502, 503, 504}
_AMBIGUOUS_STATUSES = {500, 502, 504}  # the request may have been carried out
# token errors no retry can mend: the app registration or its secret is wrong
_PERMANENT_TOKEN_ERRORS = {
    "invalid_client",
    "unauthorized_client",
    "invalid_request",
    "invalid_scope",
    "invalid_grant",
}


def odata_string(value: str) -> str:
    """An OData string literal: single quotes around, single quotes inside doubled."""
    return "'" + value.replace("'", "''") + "'"


def _seconds(header: str | None) -> float | None:
    """Retry-After as seconds: Graph sends an integer, HTTP also allows a date."""
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(header).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _graph_error(response: httpx.Response) -> tuple[str, str]:
    """Graph's ``{"error": {"code", "message"}}``, or the status line when it is not JSON."""
    try:
        error = response.json().get("error", {})
        if isinstance(error, dict):
            return str(error.get("code") or response.reason_phrase), str(error.get("message", ""))
    except (ValueError, AttributeError):
        pass
    return response.reason_phrase or "error", response.text[:200]


class TooLarge(Exception):
    """A response body over the ``max_bytes`` a caller allowed; ``size`` as far as read."""

    def __init__(self, size: int) -> None:
        super().__init__(f"{size} bytes")
        self.size = size


class GraphTransport:
    """Sends through Microsoft Graph as the sender's mailbox, with an app-only token."""

    name = "graph"

    def __init__(
        self,
        settings: GraphSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self._sleep = sleep  # a seam for tests that record the waits instead of waiting
        self._lock = threading.Lock()
        self._app: Any = None  # msal.ConfidentialClientApplication, made on first use
        self._secrets: set[str] = set()  # the client secret and every token seen
        verify: ssl.SSLContext | bool = True
        if settings.ca_bundle:
            try:
                verify = ssl.create_default_context(cafile=settings.ca_bundle)
            except (OSError, ssl.SSLError) as e:
                raise DeliveryError(
                    f"Graph: cannot read ca_bundle {settings.ca_bundle}: {type(e).__name__}",
                    permanent=True,
                ) from None
        self._http = httpx.Client(timeout=settings.timeout, verify=verify)

    def close(self) -> None:
        self._http.close()

    # --- credentials -------------------------------------------------------------------

    def _clean(self, text: str) -> str:
        for secret in self._secrets:
            if secret:
                text = text.replace(secret, "***")
        return text

    def _credential(self) -> str | dict[str, str]:
        s = self.settings
        if s.certificate_path_env:
            path = os.environ.get(s.certificate_path_env)
            if not path:
                raise DeliveryError(
                    f"Graph: the environment variable {s.certificate_path_env} "
                    "(certificate path) is empty",
                    permanent=True,
                )
            return _certificate_credential(Path(path))
        if s.client_secret_block:
            secret = prefect_secret(s.client_secret_block, "Graph")
            where = f"Prefect Secret block {s.client_secret_block}"
        else:
            secret = os.environ.get(s.client_secret_env, "")
            where = f"environment variable {s.client_secret_env}"
        if not secret:
            raise DeliveryError(f"Graph: the client secret ({where}) is empty", permanent=True)
        self._secrets.add(secret)
        return secret

    def _scope(self) -> str:
        """``https://graph.microsoft.com/.default``: the app's granted permissions on the
        resource the endpoint belongs to (a national cloud has its own host)."""
        parts = urlsplit(self.settings.endpoint)
        return f"{parts.scheme}://{parts.netloc}/.default"

    def _application(self) -> Any:
        import msal  # heavy; only when Graph is used

        with self._lock:
            if self._app is None:
                s = self.settings
                self._app = msal.ConfidentialClientApplication(
                    s.client_id,
                    client_credential=self._credential(),
                    authority=f"{s.authority.rstrip('/')}/{s.tenant_id}",
                    # the authority is given, not looked up at login.microsoftonline.com:
                    # national clouds, and the local server the tests run against
                    instance_discovery=False,
                    http_client=_requests_session(s.ca_bundle, s.timeout),
                    timeout=s.timeout,
                )
            return self._app

    def _token(self) -> str:
        """A cached token, or a new one when msal finds it expired or near expiry."""
        try:
            result = self._application().acquire_token_for_client(scopes=[self._scope()])
        except DeliveryError:
            raise
        except Exception as e:  # msal: ValueError (authority), requests' connection errors
            raise DeliveryError(
                self._clean(
                    f"Graph: no token from {self.settings.authority}: {type(e).__name__}: {e}"
                )
            ) from None
        token = result.get("access_token") if isinstance(result, dict) else None
        if not token:
            error = str(result.get("error", "unknown_error"))
            description = str(result.get("error_description", "")).split("\r\n")[0]
            raise DeliveryError(
                self._clean(f"Graph: token request refused: {error}: {description}"),
                permanent=error in _PERMANENT_TOKEN_ERRORS,
            )
        self._secrets.add(token)
        return str(token)

    def _forget_tokens(self) -> None:
        import msal

        app = self._application()
        cache = app.token_cache
        for item in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
            cache.remove_at(item)

    # --- requests ----------------------------------------------------------------------

    def _url(self, mailbox: str, rest: str) -> str:
        return f"{self.settings.endpoint.rstrip('/')}/users/{quote(mailbox, safe='@')}/{rest}"

    def _request(
        self,
        method: str,
        url: str,
        *,
        content: bytes | None = None,
        content_type: str | None = None,
        recipient: str = "",
        landed: Callable[[], bool] | None = None,
        passthrough: frozenset[int] = frozenset(),
        max_bytes: int | None = None,
    ) -> httpx.Response | None:
        """One Graph call with token refresh, throttling and bounded retries.

        ``landed`` is asked before retrying after an answer that leaves it open whether the
        request was carried out (500/502/504, a lost connection); when it says yes the call
        returns None instead of doing it twice. An answer with a status in ``passthrough``
        is returned to the caller instead of raised. With ``max_bytes`` the body is read as
        a stream and ``TooLarge`` raised as soon as it passes that many bytes.
        """
        s = self.settings
        attempt, waited, refreshed = 0, 0.0, False
        while True:
            attempt += 1
            headers = {"Authorization": f"Bearer {self._token()}"}
            if content_type:
                headers["Content-Type"] = content_type
            ambiguous = False
            try:
                if max_bytes is None:
                    response = self._http.request(method, url, content=content, headers=headers)
                else:
                    response = self._capped(method, url, headers, max_bytes)
            except (httpx.ConnectError, httpx.ConnectTimeout) as e:
                failure, delay = f"{type(e).__name__}: {e}", None
            except httpx.TransportError as e:
                failure, delay, ambiguous = f"{type(e).__name__}: {e}", None, True
            else:
                status = response.status_code
                if status < 400 or status in passthrough:
                    return response
                code, message = _graph_error(response)
                failure = f"Graph {status} {code}: {message}"
                request_id = response.headers.get("request-id")
                if request_id:
                    failure += f" (request-id {request_id})"
                if status == 401 and code == "InvalidAuthenticationToken" and not refreshed:
                    refreshed = True  # revoked or expired early: one new token, one more try
                    self._forget_tokens()
                    attempt -= 1
                    continue
                if status not in _RETRY_STATUSES:
                    raise DeliveryError(
                        self._clean(failure), recipient=recipient, attempt=attempt, permanent=True
                    )
                delay = _seconds(response.headers.get("Retry-After"))
                ambiguous = status in _AMBIGUOUS_STATUSES
            if attempt >= s.max_attempts:
                raise DeliveryError(
                    self._clean(f"{failure}; gave up after {attempt} attempts"),
                    recipient=recipient,
                    attempt=attempt,
                )
            if delay is None:
                step = min(_BACKOFF_CAP, _BACKOFF_BASE * 2 ** (attempt - 1))
                delay = step / 2 + random.uniform(0, step / 2)
            if waited + delay > s.max_wait_seconds:
                raise DeliveryError(
                    self._clean(
                        f"{failure}; waiting {delay:.0f} s more would pass the bound of "
                        f"{s.max_wait_seconds} s"
                    ),
                    recipient=recipient,
                    attempt=attempt,
                )
            log.info(
                "Graph: %s; attempt %d again in %.1f s", self._clean(failure), attempt + 1, delay
            )
            self._sleep(delay)
            waited += delay
            if ambiguous and landed is not None and landed():
                return None

    def _capped(
        self, method: str, url: str, headers: dict[str, str], max_bytes: int
    ) -> httpx.Response:
        """A streamed request whose body is read only up to ``max_bytes``."""
        with self._http.stream(method, url, headers=headers) as streamed:
            declared = streamed.headers.get("Content-Length", "")
            if streamed.status_code < 400 and declared.isdigit() and int(declared) > max_bytes:
                raise TooLarge(int(declared))
            chunks, size = [], 0
            for chunk in streamed.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise TooLarge(size)
                chunks.append(chunk)
            kept = {
                k: v
                for k, v in streamed.headers.items()
                if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
            }
            return httpx.Response(
                streamed.status_code,
                headers=kept,
                content=b"".join(chunks),
                request=streamed.request,
            )

    # --- the transport -----------------------------------------------------------------

    def send(self, raw: bytes, sender: str, recipients: list[str]) -> Receipt:
        mailbox = self.settings.sender or sender
        body = base64.b64encode(raw)
        to = ", ".join(recipients)
        if len(body) > MAX_REQUEST_BYTES:
            raise DeliveryError(
                f"message of {len(raw)} bytes is {len(body)} bytes as base64, over Graph's "
                f"{MAX_REQUEST_BYTES // (1024 * 1024)} MB request limit; nothing was sent. "
                "Make the attachments smaller or send this message with the smtp transport",
                recipient=to,
                permanent=True,
            )
        message_id = _message_id(raw)

        def landed() -> bool:
            return message_id is not None and self.was_sent(message_id, mailbox) is True

        response = self._request(
            "POST",
            self._url(mailbox, "sendMail"),
            content=body,
            content_type="text/plain",
            recipient=to,
            landed=landed,
        )
        if response is None:
            return Receipt(self.name, f"found in Sent Items of {mailbox} after a server error")
        request_id = response.headers.get("request-id", "")
        detail = f"accepted by Graph as {mailbox} for {len(recipients)}"
        return Receipt(self.name, detail + (f" (request-id {request_id})" if request_id else ""))

    def was_sent(self, message_id: str, sender: str) -> bool | None:
        """Whether Sent Items of the mailbox holds a message with this Message-ID; None when
        Graph cannot be asked (the caller then decides, e.g. resends with the same id)."""
        mailbox = self.settings.sender or sender
        query = (
            "$filter="
            + quote(f"internetMessageId eq {odata_string(message_id)}", safe="")
            + "&$select=id,internetMessageId&$top=1"
        )
        url = self._url(mailbox, f"mailFolders('SentItems')/messages?{query}")
        try:
            response = self._request("GET", url)
            found = response.json()["value"] if response is not None else None
        except (DeliveryError, ValueError, KeyError, TypeError) as e:
            log.warning(
                "Graph: cannot look up %s in Sent Items: %s", message_id, self._clean(str(e))
            )
            return None
        return bool(found) if isinstance(found, list) else None


def _message_id(raw: bytes) -> str | None:
    """The Message-ID header of a MIME message (headers only; the body is not parsed)."""
    value = BytesHeaderParser(policy=policy.compat32).parsebytes(raw).get("Message-ID")
    return " ".join(str(value).split()) or None if value else None


def _certificate_credential(path: Path) -> dict[str, str]:
    """msal's certificate credential from one PEM file with the private key (unencrypted)
    and the certificate; Entra ID matches the thumbprint against the uploaded certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    try:
        pem = path.read_bytes()
        cert = x509.load_pem_x509_certificate(pem)
        key = serialization.load_pem_private_key(pem, password=None)
    except (OSError, ValueError, TypeError) as e:  # no detail: it could quote the key
        raise DeliveryError(
            f"Graph: cannot read a private key and a certificate from {path}: {type(e).__name__}",
            permanent=True,
        ) from None
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return {
        "private_key": key_pem,
        "thumbprint": cert.fingerprint(hashes.SHA1()).hex(),
        "public_certificate": cert.public_bytes(serialization.Encoding.PEM).decode(),
    }


def _requests_session(ca_bundle: str | None, timeout: float) -> Any:
    """msal's HTTP client, as msal makes it but trusting ``ca_bundle``: requests lets
    REQUESTS_CA_BUNDLE override a session's ``verify``, so it goes with every request."""
    if ca_bundle is None:
        return None  # msal's own
    import requests

    session = requests.Session()
    session.mount("https://", requests.adapters.HTTPAdapter(max_retries=1))
    session.request = functools.partial(  # type: ignore[method-assign]
        session.request, timeout=timeout, verify=ca_bundle
    )
    return session
