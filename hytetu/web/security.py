"""What every hytetu web page shares: security headers, signed double-submit CSRF tokens,
per-client rate limits, trusted reverse proxies, a bounded form reader and uvicorn's
settings (with header and body read timeouts). The feedback form (``hytetu.webform``) and
the review page (``hytetu.web.review``) are both built from these pieces, so there is one
scheme of each.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
import math
import secrets
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import parse_qs

from starlette.datastructures import MutableHeaders
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "cross-origin-opener-policy": "same-origin",
}
HSTS = "max-age=31536000"  # only on responses whose original scheme is https
TOO_MANY = (
    "Liian monta pyyntöä. Yritä uudelleen {minutes} minuutin kuluttua.\n"
    "För många förfrågningar. Försök igen om {minutes} minuter.\n"
)
MAX_TRACKED_CLIENTS = 50_000  # bounds the rate limiter's memory under a flood of addresses
FORM_ENCODING = "application/x-www-form-urlencoded"
log = logging.getLogger("hytetu.webform")


class SecurityHeaders:
    """Adds the security headers to every HTTP response, errors and 404s included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    # A response may narrow the policy for itself (a memo's inline styles).
                    if name == "content-security-policy" and name in headers:
                        continue
                    headers[name] = value
                if scope.get("scheme") == "https":
                    headers["strict-transport-security"] = HSTS
            await send(message)

        await self.app(scope, receive, send_with_headers)


# --- CSRF -------------------------------------------------------------------------------


class CsrfTokens:
    """Signed double-submit tokens: the browser holds a random id in an HttpOnly cookie,
    each form carries ``nonce.issued.HMAC(id|nonce|issued)``. A token is valid only with
    the cookie it was made for and for ``max_age`` seconds."""

    def __init__(self, secret: bytes, max_age: int) -> None:
        self.secret, self.max_age = secret, max_age

    def sign(self, sid: str, nonce: str, issued: int) -> str:
        message = f"{sid}|{nonce}|{issued}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def new(self, sid: str) -> str:
        nonce, issued = secrets.token_urlsafe(16), int(time.time())
        return f"{nonce}.{issued}.{self.sign(sid, nonce, issued)}"

    def check(self, sid: str | None, token: str) -> str | None:
        """The token's nonce when it is valid for this browser's cookie, else None."""
        parts = token.split(".")
        if not sid or len(parts) != 3 or not parts[1].isdigit():
            return None
        nonce, issued, signature = parts[0], int(parts[1]), parts[2]
        if not hmac.compare_digest(self.sign(sid, nonce, issued), signature):
            return None
        if not 0 <= time.time() - issued <= self.max_age:
            return None
        return nonce


# --- rate limits ------------------------------------------------------------------------


@dataclass(frozen=True)
class RateLimits:
    """How much one client (an IP address; IPv6 by its /64) may ask in a sliding window.
    0 switches a limit off."""

    submissions: int = 20  # POSTs of the form
    requests: int = 300  # any request (page loads, stylesheet, POSTs)
    window: float = 600.0  # seconds

    def __post_init__(self) -> None:
        if self.submissions < 0 or self.requests < 0 or self.window <= 0:
            raise ValueError("rate limits must be 0 (off) or more, and the window positive")


class SlidingWindow:
    """At most ``limit`` hits per ``window`` seconds per key, in memory (the form is one
    process). Only allowed hits are recorded, so a client that keeps knocking while refused
    is let in again as soon as its oldest hit leaves the window."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float]) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self.hits: dict[str, deque[float]] = {}
        self._swept = clock()

    def hit(self, key: str) -> float:
        """0.0 if allowed (and recorded), else the seconds until the next hit is allowed."""
        if not self.limit:
            return 0.0
        now = self.clock()
        self._sweep(now)
        times = self.hits.setdefault(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) >= self.limit:
            return max(times[0] + self.window - now, 0.001)
        times.append(now)
        return 0.0

    def _sweep(self, now: float) -> None:
        if now - self._swept < self.window and len(self.hits) < MAX_TRACKED_CLIENTS:
            return
        self._swept = now
        for key in [k for k, t in self.hits.items() if not t or t[-1] <= now - self.window]:
            del self.hits[key]
        while len(self.hits) >= MAX_TRACKED_CLIENTS:  # a flood from many addresses
            del self.hits[next(iter(self.hits))]


def client_key(scope: Scope) -> str:
    """The client's address as the rate limits see it: after ProxyHeadersMiddleware (if a
    trusted proxy sent the request) the real client's; an IPv6 client by its /64."""
    client = scope.get("client")
    host = client[0] if client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    return str(address)


def too_many(wait: float) -> Response:
    """429 with Retry-After, in Finnish and Swedish."""
    seconds = math.ceil(wait)
    return Response(
        TOO_MANY.format(minutes=max(1, math.ceil(seconds / 60))),
        status_code=429,
        headers={"retry-after": str(seconds)},
        media_type="text/plain; charset=utf-8",
    )


class RateLimit:
    """429 with Retry-After when a client exceeds its requests or its form submissions."""

    def __init__(
        self, app: ASGIApp, limits: RateLimits, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.app = app
        self.requests = SlidingWindow(limits.requests, limits.window, clock)
        self.submissions = SlidingWindow(limits.submissions, limits.window, clock)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        key = client_key(scope)
        wait = self.requests.hit(key)
        if not wait and scope["method"] == "POST":
            wait = self.submissions.hit(key)
        if not wait:
            await self.app(scope, receive, send)
            return
        log.warning("rate limit: %s refused for %s s", key, math.ceil(wait))
        await too_many(wait)(scope, receive, send)


# --- proxies, forms, the server ---------------------------------------------------------


def parse_trusted_proxies(value: str | Sequence[str] | None) -> list[str]:
    """``"10.0.0.1, 10.1.0.0/16"`` -> a checked list; empty = trust no proxy. ``*`` trusts
    every peer: only when nothing but the proxy can reach the form's port."""
    items = value.split(",") if isinstance(value, str) else list(value or [])
    proxies = [x.strip() for x in items if x.strip()]
    for item in proxies:
        if item == "*":
            continue
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(
                f"trusted proxy {item!r} is not an IP address or network (e.g. 10.0.0.5, "
                "10.0.0.0/24)"
            ) from None
    return proxies


def behind_proxies(app: ASGIApp, proxies: list[str]) -> ASGIApp:
    """``app`` believing X-Forwarded-For/-Proto from ``proxies`` only (none: unchanged)."""
    if not proxies:
        return app
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    return cast(ASGIApp, ProxyHeadersMiddleware(cast(Any, app), trusted_hosts=proxies))


async def read_form(
    request: Request, fields: Sequence[str], max_body: int
) -> dict[str, str] | Response:
    """An url-encoded POST body as {field: first value}, only the ``fields`` named; or the
    error response (415 another encoding, 413 too large, 400 malformed)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    if content_type != FORM_ENCODING:
        return Response("unsupported form encoding", status_code=415)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_body:
        return Response("request too large", status_code=413)
    body = b""
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_body:
                return Response("request too large", status_code=413)
    except ClientDisconnect:
        # a line, not a traceback: the client went away (or was timed out) mid-body
        if not request.scope.get(TIMED_OUT):
            log.info(
                "%s: client disconnected after %d bytes of the body of %s %s",
                client_key(request.scope),
                len(body),
                request.method,
                request.url.path,
            )
        return Response("client disconnected", status_code=400)  # sent to no one
    try:
        parsed = parse_qs(
            body.decode("utf-8"), keep_blank_values=True, max_num_fields=len(fields) + 5
        )
    except (UnicodeDecodeError, ValueError):
        return Response("malformed form", status_code=400)
    return {k: v[0] for k, v in parsed.items() if k in fields}


#: Seconds a client has to send a request's headers (from its first byte, or from the
#: connection when it sends nothing), then its body (from the end of the headers). uvicorn
#: itself has neither: an unfinished request held a connection for good.
HEADER_TIMEOUT = 10.0
BODY_TIMEOUT = 10.0
TIMED_OUT = "hytetu.timed_out"  # set in a request's scope when its body timed out
_REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 16\r\nconnection: close\r\n\r\nrequest timeout\n"
)


def _timed_protocol(header_timeout: float, body_timeout: float) -> type:
    """uvicorn's h11 protocol with a deadline on reading each request: its headers
    within ``header_timeout`` s, then its body within ``body_timeout`` s; past it the
    client gets 408 (unless a response has begun) and the connection is closed."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class TimedH11Protocol(H11Protocol):
        _timer: asyncio.TimerHandle | None = None
        _phase = ""

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm("headers", header_timeout)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._watch()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._watch()

        def connection_lost(self, exc: Exception | None) -> None:
            self._arm("", 0)
            super().connection_lost(exc)

        def _watch(self) -> None:
            if self.transport.is_closing():
                self._arm("", 0)
                return
            state = self.conn.their_state
            if state is h11.IDLE and self.conn.trailing_data[0]:
                self._arm("headers", header_timeout)  # a request begun, its headers not done
            elif state is h11.SEND_BODY:
                self._arm("body", body_timeout)
            elif state is not h11.IDLE:
                self._arm("", 0)  # the request is in: the app's time is not the client's
            elif self._phase == "body":
                self._arm("", 0)  # idle between requests: uvicorn's keep-alive timeout

        def _arm(self, phase: str, seconds: float) -> None:
            if phase == self._phase:
                return  # the deadline runs from when the phase began
            if self._timer is not None:
                self._timer.cancel()
            self._phase, self._timer = phase, None
            if phase:
                self._timer = self.loop.call_later(seconds, self._expire)

        def _expire(self) -> None:
            phase, self._timer, self._phase = self._phase, None, ""
            if self.transport.is_closing():
                return
            seconds = header_timeout if phase == "headers" else body_timeout
            log.info(
                "%s: request %s not received in %g s: 408, connection closed",
                client_key({"client": self.client}),
                phase,
                seconds,
            )
            cycle = self.cycle
            if cycle is not None and phase == "body":
                cast(dict[str, Any], self.scope)[TIMED_OUT] = True
            if cycle is None or phase == "headers" or not cycle.response_started:
                self.transport.write(_REQUEST_TIMEOUT)
            self.transport.close()

    return TimedH11Protocol


def server_config(
    app: ASGIApp,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
    *,
    header_timeout: float = HEADER_TIMEOUT,
    body_timeout: float = BODY_TIMEOUT,
) -> Any:
    """uvicorn's settings: no Server header, and uvicorn's own proxy-header handling off
    (it would trust 127.0.0.1 by default); ``behind_proxies`` does it instead, with
    nothing trusted unless configured. Requests are read under deadlines
    (``_timed_protocol``); the web pages' log lines go where uvicorn's go."""
    import copy

    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    log_config = copy.deepcopy(LOGGING_CONFIG)
    for name in ("hytetu.webform", "hytetu.review"):  # the web pages' own loggers only
        log_config["loggers"][name] = {"handlers": ["default"], "level": log_level.upper()}
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        log_config=log_config,
        server_header=False,
        proxy_headers=False,
        lifespan="off",
        http=_timed_protocol(header_timeout, body_timeout),
    )
