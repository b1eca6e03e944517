"""The feedback form's protections, each with a test that fails without it: CSRF, field
and body limits (also chunked), the honeypot, security headers on every response, per-client
rate limits, no stack traces, and a real uvicorn behind a (trusted or untrusted) proxy."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
import socket
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from conftest import running
from test_webform import OPEN, Clock, responses, token, valid

from hytetu import db, webform
from hytetu.webform import (
    COOKIE,
    LIMITS,
    MAX_BODY,
    TOKEN_MAX_AGE,
    RateLimits,
    create_app,
)

SECRET = b"test-secret"
FORM = {"content-type": "application/x-www-form-urlencoded"}


class Monotonic:
    """The rate limiter's clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _signed(sid: str, issued: int, secret: bytes = SECRET) -> str:
    nonce = secrets.token_urlsafe(16)
    sig = hmac.new(secret, f"{sid}|{nonce}|{issued}".encode(), hashlib.sha256).hexdigest()
    return f"{nonce}.{issued}.{sig}"


def _assert_security_headers(response: httpx.Response) -> None:
    csp = response.headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp, response.headers
    assert response.headers.get("x-content-type-options") == "nosniff"
    assert response.headers.get("referrer-policy") == "no-referrer"
    assert response.headers.get("x-frame-options") == "DENY"
    assert "server" not in response.headers


# --- CSRF ---------------------------------------------------------------------------


def test_csrf_token_must_be_present_signed_bound_and_fresh(client: TestClient, url: str) -> None:
    page = client.get("/")
    sid = client.cookies[COOKIE]
    good = token(page.text)
    missing = {k: v for k, v in valid(good).items() if k != "token"}
    assert client.post("/", data=missing).status_code == 403
    wrong_secret = _signed(sid, int(time.time()), secret=b"another-secret")
    assert client.post("/", data=valid(wrong_secret)).status_code == 403
    expired = _signed(sid, int(time.time()) - TOKEN_MAX_AGE - 60)
    refused = client.post("/", data=valid(expired))
    assert refused.status_code == 403 and "Lomakkeen tarkiste ei kelpaa" in refused.text
    other_browser = _signed("another-cookie", int(time.time()))
    assert client.post("/", data=valid(other_browser)).status_code == 403
    assert responses(url) == []
    # The control: the token from the page, with its cookie, is accepted.
    assert client.post("/", data=valid(good)).status_code == 200
    assert len(responses(url)) == 1


def test_csrf_cookie_is_httponly_samesite_strict(client: TestClient) -> None:
    cookie = client.get("/").headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    assert "secure" not in cookie  # plain http here; https below (test_behind_a_proxy)


# --- limits -------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(LIMITS))
def test_every_field_has_a_length_limit(client: TestClient, url: str, name: str) -> None:
    tok = token(client.get("/").text)
    data = valid(tok)
    data[name] = "x" * (LIMITS[name] + 1)
    page = client.post("/", data=data)
    assert page.status_code in (400, 403), page.text
    assert responses(url) == []


def test_form_fields_carry_maxlength(client: TestClient) -> None:
    html = client.get("/").text
    for name in ("organisation", "email", "text"):
        assert re.search(rf'name="{name}"[^>]*maxlength="{LIMITS[name]}"', html) or re.search(
            rf'maxlength="{LIMITS[name]}"[^>]*name="{name}"', html
        ), name


def test_too_many_fields_and_bad_encoding_are_refused(client: TestClient, url: str) -> None:
    tok = token(client.get("/").text)
    many = "&".join(f"f{i}=x" for i in range(50)) + f"&token={tok}&text=x"
    assert client.post("/", content=many, headers=FORM).status_code == 400
    assert client.post("/", content=b"text=\xff\xfe", headers=FORM).status_code == 400
    assert responses(url) == []


def test_chunked_body_without_content_length_is_cut_off(client: TestClient, url: str) -> None:
    sent: list[int] = []

    def chunks() -> Iterator[bytes]:
        yield b"text="
        for _ in range(40):
            sent.append(4096)
            yield b"a" * 4096

    request = client.build_request("POST", "/", content=chunks(), headers=FORM)
    assert "content-length" not in request.headers
    assert request.headers["transfer-encoding"] == "chunked"
    page = client.send(request)
    assert page.status_code == 413
    assert sum(sent) > MAX_BODY
    assert responses(url) == []


def test_a_declared_oversized_body_is_refused_before_it_is_read(url: str, clock: Clock) -> None:
    app = create_app(url, clock=clock, secret=SECRET)
    reads: list[int] = []
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        reads.append(1)
        return {"type": "http.request", "body": b"text=x", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"form.example"),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"content-length", str(10 * MAX_BODY).encode()),
        ],
        "client": ("192.0.2.10", 50000),
        "server": ("127.0.0.1", 8000),
    }
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 413
    assert reads == []


# --- honeypot -----------------------------------------------------------------------


def test_honeypot_looks_like_success_but_stores_and_logs_nothing(
    client: TestClient, url: str
) -> None:
    tok = token(client.get("/").text)
    page = client.post("/", data=valid(tok, website="https://spam.example/"))
    assert page.status_code == 200
    assert "<title>Kiitos palautteestasi" in page.text and 'role="status"' in page.text
    assert responses(url) == []
    with db.session_scope(url) as s:
        assert s.scalars(select(db.AuditEvent).filter_by(action="feedback.form")).all() == []


# --- headers ------------------------------------------------------------------------


def test_security_headers_on_every_kind_of_response(client: TestClient, url: str) -> None:
    tok = token(client.get("/").text)
    seen = [
        client.get("/"),
        client.get("/?lang=sv"),
        client.get("/form.css"),
        client.get("/nowhere"),  # 404
        client.put("/"),  # 405
        client.post("/", data=valid(tok, text="")),  # 400
        client.post("/", data=valid("forged")),  # 403
        client.post("/", files={"text": ("a.txt", b"x")}),  # 415
        client.post("/", content=b"a" * (MAX_BODY + 1), headers=FORM),  # 413
        client.post("/", data=valid(tok)),  # 200
    ]
    assert [r.status_code for r in seen] == [200, 200, 200, 404, 405, 400, 403, 415, 413, 200]
    for response in seen:
        _assert_security_headers(response)
        assert "strict-transport-security" not in response.headers  # http, not https


# --- rate limits --------------------------------------------------------------------


def test_submissions_per_client_are_rate_limited(url: str, clock: Clock) -> None:
    ticks = Monotonic()
    limits = RateLimits(submissions=3, requests=100, window=600)
    app = create_app(url, clock=clock, secret=SECRET, limits=limits, rate_clock=ticks)
    one = TestClient(app, client=("198.51.100.7", 40000))
    tok = token(one.get("/").text)
    for i in range(3):
        ticks.now += 10
        assert one.post("/", data=valid(tok, text=f"Näkemys {i}")).status_code == 200
    stored = len(responses(url))
    refused = one.post("/", data=valid(tok, text="Neljäs"))
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == str(600 - 20)  # the first leaves the window
    assert "Liian monta pyyntöä" in refused.text and "För många förfrågningar" in refused.text
    _assert_security_headers(refused)
    assert len(responses(url)) == stored
    assert one.get("/").status_code == 200  # reading the form is still allowed
    # Another client is not affected; the same client is let in once the window moved on.
    other = TestClient(app, client=("198.51.100.8", 40000))
    assert other.post("/", data=valid(token(other.get("/").text), text="Muu")).status_code == 200
    ticks.now += 581
    assert one.post("/", data=valid(tok, text="Myöhemmin")).status_code == 200


def test_requests_per_client_are_rate_limited_ipv6_by_64(url: str, clock: Clock) -> None:
    ticks = Monotonic()
    app = create_app(
        url,
        clock=clock,
        secret=SECRET,
        limits=RateLimits(submissions=10, requests=5, window=60),
        rate_clock=ticks,
    )
    first = TestClient(app, client=("2001:db8:1:2::10", 40000))
    same_64 = TestClient(app, client=("2001:db8:1:2::99", 40000))
    other_64 = TestClient(app, client=("2001:db8:1:3::10", 40000))
    for _ in range(3):
        assert first.get("/form.css").status_code == 200
    for _ in range(2):
        assert same_64.get("/form.css").status_code == 200
    refused = same_64.get("/form.css")
    assert refused.status_code == 429 and refused.headers["retry-after"] == "60"
    assert first.get("/").status_code == 429
    assert other_64.get("/form.css").status_code == 200


def test_rate_limit_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        RateLimits(submissions=-1)
    with pytest.raises(ValueError):
        RateLimits(window=0)
    with pytest.raises(ValueError, match="not an IP address"):
        create_app("sqlite://", trusted_proxies="proxy.example")


# --- no stack traces ----------------------------------------------------------------


@pytest.mark.parametrize("broken", ["no tables", "no server"])
def test_an_unexpected_error_shows_a_plain_page_without_details(
    broken: str, tmp_path: Path, clock: Clock
) -> None:
    if broken == "no tables":  # a database file that was never migrated: SQL errors
        path = tmp_path / "salainen-polku" / "hytetu.db"
        path.parent.mkdir()
        bad_url = f"sqlite:///{path}"
        db.get_engine(bad_url).connect().close()
    else:  # a PostgreSQL server that does not answer
        bad_url = "postgresql+psycopg://hytetu:salasana@127.0.0.1:9/hytetu?connect_timeout=2"
    try:
        client = TestClient(
            create_app(bad_url, clock=clock, secret=SECRET), raise_server_exceptions=False
        )
        pages = [
            client.get("/"),
            client.post("/", data=valid("x"), headers={"cookie": f"{COOKIE}=abc"}),
        ]
    finally:
        db.dispose(bad_url)
    for page in pages:
        assert page.status_code == 500
        assert "Palvelussa tapahtui virhe" in page.text and "Ett fel inträffade" in page.text
        lowered = page.text.lower()
        for leak in (
            "traceback",
            "error)",
            "operationalerror",
            "sqlalchemy",
            "select",
            "region",
            "sqlite",
            "psycopg",
            "salainen-polku",
            "salasana",
            "hytetu.db",
            "127.0.0.1",
            ".py",
        ):
            assert leak not in lowered, leak
        _assert_security_headers(page)


# --- a real uvicorn, direct and behind a proxy --------------------------------------


def test_direct_clients_cannot_spoof_forwarded_headers(url: str, clock: Clock) -> None:
    limits = RateLimits(submissions=10, requests=3, window=600)
    app = create_app(url, clock=clock, secret=SECRET, limits=limits)  # no trusted proxy
    with running(app) as base, httpx.Client(base_url=base) as http:
        page = http.get("/", headers={"x-forwarded-proto": "https"})
        assert page.status_code == 200
        _assert_security_headers(page)
        assert "secure" not in page.headers["set-cookie"].lower()
        assert "strict-transport-security" not in page.headers
        # Each request pretends to come from elsewhere; all count for 127.0.0.1.
        for i in range(2):
            spoof = {"x-forwarded-for": f"203.0.113.{i + 1}"}
            assert http.get("/form.css", headers=spoof).status_code == 200
        refused = http.get("/form.css", headers={"x-forwarded-for": "203.0.113.99"})
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0


def test_behind_a_trusted_proxy(url: str, clock: Clock) -> None:
    limits = RateLimits(submissions=10, requests=2, window=600)
    app = create_app(url, clock=clock, secret=SECRET, limits=limits, trusted_proxies="127.0.0.1")
    with running(app) as base, httpx.Client(base_url=base) as http:
        page = http.get(
            "/", headers={"x-forwarded-proto": "https", "x-forwarded-for": "198.51.100.7"}
        )
        assert page.status_code == 200
        assert "secure" in page.headers["set-cookie"].lower()
        assert page.headers["strict-transport-security"] == webform.HSTS
        assert "server" not in page.headers
        client_7 = {"x-forwarded-for": "198.51.100.7"}
        assert http.get("/form.css", headers=client_7).status_code == 200
        assert http.get("/form.css", headers=client_7).status_code == 429
        # A client that writes its own X-Forwarded-For gets it prepended to by the proxy:
        # only the address the proxy saw counts.
        prepended = {"x-forwarded-for": "203.0.113.50, 198.51.100.7"}
        assert http.get("/form.css", headers=prepended).status_code == 429
        assert http.get("/form.css", headers={"x-forwarded-for": "198.51.100.8"}).is_success
        # A chunked body over the wire is cut off too.
        big = (b"a" * 8192 for _ in range(10))
        other = {"x-forwarded-for": "198.51.100.9"} | FORM
        assert http.post("/", content=big, headers=other).status_code == 413


def test_an_untrusted_proxy_is_not_believed(url: str, clock: Clock) -> None:
    limits = RateLimits(submissions=10, requests=2, window=600)
    app = create_app(url, clock=clock, secret=SECRET, limits=limits, trusted_proxies="192.0.2.1")
    with running(app) as base, httpx.Client(base_url=base) as http:
        page = http.get("/", headers={"x-forwarded-proto": "https"})
        assert "secure" not in page.headers["set-cookie"].lower()
        assert http.get("/form.css", headers={"x-forwarded-for": "198.51.100.8"}).is_success
        assert http.get("/form.css", headers={"x-forwarded-for": "198.51.100.9"}).status_code == 429


# --- the command --------------------------------------------------------------------


def test_serve_feedback_options_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from hytetu.cli import app

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(webform, "serve", lambda **kw: calls.append(kw))
    monkeypatch.setenv("HYTETU_TRUSTED_PROXIES", "10.0.0.5, 10.1.0.0/16")
    monkeypatch.setenv("HYTETU_FORM_RATE_SUBMISSIONS", "5")
    result = CliRunner().invoke(app, ["serve-feedback", "--rate-window", "60"])
    assert result.exit_code == 0, result.output
    assert calls[0]["trusted_proxies"] == ["10.0.0.5", "10.1.0.0/16"]
    assert calls[0]["limits"] == RateLimits(submissions=5, requests=300, window=60)
    result = CliRunner().invoke(app, ["serve-feedback", "--trusted-proxies", "proxy.example"])
    assert result.exit_code == 2 and "not an IP address" in result.output
    monkeypatch.delenv("HYTETU_TRUSTED_PROXIES")
    CliRunner().invoke(app, ["serve-feedback"])
    assert calls[-1]["trusted_proxies"] == []
    help_text = CliRunner().invoke(app, ["serve-feedback", "--help"]).output
    assert "--trusted-proxies" in help_text and "--rate-submissions" in help_text


# --- fixtures: the example loaded once, a private copy per test --------------------


@pytest.fixture
def url(loaded_copy: str) -> str:
    return loaded_copy


@pytest.fixture
def clock() -> Clock:
    return Clock(OPEN)


@pytest.fixture
def client(url: str, clock: Clock) -> TestClient:
    return TestClient(create_app(url, clock=clock, secret=SECRET))


# --- slow and vanishing clients, over raw sockets -----------------------------------

SHORT = {"header_timeout": 0.6, "body_timeout": 0.6}


class ServerLog(logging.Handler):
    """What hytetu and uvicorn log while a test's server runs. ``attach`` after the server
    started: uvicorn configures logging as it starts."""

    NAMES = ("hytetu.webform", "uvicorn.error")

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.levels = {n: logging.getLogger(n).level for n in self.NAMES}

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def attach(self) -> list[logging.LogRecord]:
        for name in self.NAMES:
            logging.getLogger(name).addHandler(self)
            logging.getLogger(name).setLevel(logging.INFO)
        return self.records

    def detach(self) -> None:
        for name in self.NAMES:
            logging.getLogger(name).removeHandler(self)
            logging.getLogger(name).setLevel(self.levels[name])


@pytest.fixture
def server_log() -> Iterator[ServerLog]:
    log = ServerLog()
    yield log
    log.detach()


def connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    return sock


def answer(sock: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and how long that took."""
    started, data = time.monotonic(), b""
    while time.monotonic() - started < 5:
        chunk = sock.recv(4096)  # the socket's own timeout bounds each wait
        if not chunk:
            return data, time.monotonic() - started
        data += chunk
    pytest.fail(f"the server kept the connection open for 5 s; sent {data[:80]!r}")


def wait_for(records: list[logging.LogRecord], words: str, seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while not any(words in r.getMessage() for r in records):
        if time.monotonic() > deadline:
            pytest.fail(f"no log line with {words!r}: {[r.getMessage() for r in records]}")
        time.sleep(0.02)


def no_traceback(records: list[logging.LogRecord]) -> None:
    assert not [r for r in records if r.exc_info], [r.getMessage() for r in records]
    assert not any("Exception in ASGI" in r.getMessage() for r in records)


def test_unfinished_headers_get_408_and_a_closed_connection(
    url: str, clock: Clock, server_log: ServerLog
) -> None:
    app = create_app(url, clock=clock, secret=SECRET)
    with running(app, **SHORT) as base:
        log = server_log.attach()
        with connect(base) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: form.example\r\nAccept: text/ht")
            data, took = answer(sock)
        assert data.startswith(b"HTTP/1.1 408 ") and took < 3
        with connect(base) as sock:  # a connection that never says anything
            data, took = answer(sock)
        assert data.startswith(b"HTTP/1.1 408 ") and took < 3
        # a kept-alive connection whose second request stalls in its headers
        with connect(base) as sock:
            sock.sendall(b"GET /form.css HTTP/1.1\r\nHost: form.example\r\n\r\n")
            first = sock.recv(65536)
            assert first.startswith(b"HTTP/1.1 200 ")
            sock.sendall(b"GET /form.css HTTP/1.1\r\nHo")
            data, took = answer(sock)
        assert b"408 Request Timeout" in data and took < 3
        # headers sent slowly, but within the time, are served
        with connect(base) as sock:
            for piece in (b"GET /form.css HTTP/1.1\r\n", b"Host: form.example\r\n", b"\r\n"):
                sock.sendall(piece)
                time.sleep(0.15)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        wait_for(log, "request headers not received in 0.6 s: 408")
        no_traceback(log)


def test_a_short_body_gets_408_within_the_body_timeout(
    url: str, clock: Clock, server_log: ServerLog
) -> None:
    app = create_app(url, clock=clock, secret=SECRET)
    with running(app, **SHORT) as base:
        log = server_log.attach()
        with connect(base) as sock:
            sock.sendall(
                b"POST / HTTP/1.1\r\nHost: form.example\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 400\r\n\r\n"
                b"lang=fi&text=Py%C3%B6r%C3%A4tiet"
            )
            data, took = answer(sock)
        assert data.startswith(b"HTTP/1.1 408 ") and took < 3
        wait_for(log, "request body not received in 0.6 s: 408")
        no_traceback(log)
        assert not any("disconnected" in r.getMessage() for r in log)  # one line, not two
    with db.session_scope(url) as s:
        assert s.scalars(select(db.FeedbackResponse).filter_by(channel="form")).first() is None


def test_a_client_that_drops_mid_body_leaves_one_quiet_line(
    url: str, clock: Clock, server_log: ServerLog
) -> None:
    app = create_app(url, clock=clock, secret=SECRET)
    with running(app) as base:  # the default timeouts: the drop, not a timeout, ends it
        log = server_log.attach()
        with connect(base) as sock:
            sock.sendall(
                b"POST / HTTP/1.1\r\nHost: form.example\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 5000\r\n\r\n"
                + b"text="
                + b"a" * 995
            )
            time.sleep(0.2)  # the app is reading the body
        wait_for(log, "client disconnected after 1000 bytes of the body of POST /")
        time.sleep(0.2)
        assert len(log) == 1, [r.getMessage() for r in log]
        assert log[0].levelno == logging.INFO
        no_traceback(log)
