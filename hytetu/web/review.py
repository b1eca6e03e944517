"""The coordinator's review page of the compilation (koonnin tarkistus), in Finnish and
Swedish: per priority area and goal cell the themes with their findings and groups, the
compile's suggestions, and one form per correction (merge or keep apart a suggested pair,
move a finding, word a theme, mark it common). Each action is stored as a correction with
the coordinator's name, the cycle is compiled again in the same transaction, and the
browser is sent back to the cell (POST, redirect, GET).

Login: the coordinator's name and the password from ``HYTETU_REVIEW_PASSWORD`` or a Prefect
Secret block named in ``HYTETU_REVIEW_PASSWORD_BLOCK``; then a signed session cookie
(HttpOnly, SameSite=Strict, Secure under https) that expires. Every POST carries a CSRF
token (``hytetu.web.security``), login attempts are rate-limited, and the pages need no
JavaScript (the CSP forbids it). Run it with ``hytetu serve-review``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from hytetu import db, findings
from hytetu.config import fallback_language
from hytetu.errors import HytetuError, StateError
from hytetu.state import CycleView, cycle_view
from hytetu.web.security import (
    CsrfTokens,
    RateLimit,
    RateLimits,
    SecurityHeaders,
    SlidingWindow,
    behind_proxies,
    client_key,
    parse_trusted_proxies,
    read_form,
    server_config,
    too_many,
)

PASSWORD_ENV = "HYTETU_REVIEW_PASSWORD"
PASSWORD_BLOCK_ENV = "HYTETU_REVIEW_PASSWORD_BLOCK"
SECRET_ENV = "HYTETU_REVIEW_SECRET"
MIN_PASSWORD = 8
LANGUAGES = ("fi", "sv")
SESSION_COOKIE = "hytetu_review"
CSRF_COOKIE = "hytetu_review_csrf"
SESSION_MAX_AGE = 8 * 3600  # a working day; then log in again
TOKEN_MAX_AGE = SESSION_MAX_AGE
MAX_BODY = 16 * 1024
MAX_NAME = 100
#: The corrections the page stores (reclassify and split stay on the command line).
ACTIONS = ("merge", "keep_apart", "move", "rename", "common")
ACTION_FIELDS = (
    "token",
    "lang",
    "kind",
    "cell",
    "a",
    "b",
    "text",
    "to",
    "group",
    "wording",
    "common",
)
LOGIN_FIELDS = ("token", "lang", "name", "password", "next")
# A memo document opens in the browser with its own inline styles and nothing else.
DOCUMENT_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
#: Login attempts one client may make, and all clients together, per window.
LOGIN_ATTEMPTS = 10
LOGIN_ATTEMPTS_ALL = 100
LOGIN_WINDOW = 900.0
log = logging.getLogger("hytetu.review")

STYLESHEET = """
body{font-family:system-ui,sans-serif;max-width:64rem;margin:1.5rem auto;padding:0 1rem;
line-height:1.45;color:#1a1a1a;background:#fff}
h1{font-size:1.6rem}h2{font-size:1.35rem;margin-top:2.5rem;border-bottom:2px solid #1f4e79}
h3{font-size:1.15rem;margin:0 0 .3rem}h4{font-size:1rem;margin:0}
a{color:#1f4e79}
:focus-visible{outline:3px solid #d35400;outline-offset:2px}
header.top{display:flex;justify-content:space-between;align-items:baseline;gap:1rem;flex-wrap:wrap}
header.top form{display:inline}
.cell{border:1px solid #b7c4d1;border-radius:4px;padding:.8rem 1rem;margin:1.2rem 0}
.goal{color:#444;font-size:.92rem;margin:.1rem 0 .6rem}
.theme{border-top:1px solid #d9e1e8;padding:.6rem 0}
.theme:first-of-type{border-top:0}
.facts{font-size:.9rem;color:#333;margin:.2rem 0}
.common{background:#e6f2e6;border:1px solid #2f6b2f;color:#1d4a1d;padding:0 .4rem;border-radius:3px;
font-weight:600}
.low{color:#8a4b00;font-weight:600}
ul.members{margin:.3rem 0 .4rem;padding-left:1.2rem}
ul.members li{margin:.25rem 0}
details.move{margin-top:.4rem;font-size:.92rem}
details.move summary{cursor:pointer;color:#1f4e79;text-decoration:underline}
details.move form{display:flex;margin:.35rem 0 .35rem 1rem}
.group{color:#555;font-size:.9rem}
form.inline{display:inline-flex;gap:.4rem;align-items:center;flex-wrap:wrap;margin:.15rem 0}
.tools{display:flex;gap:1rem;flex-wrap:wrap;align-items:flex-end;margin-top:.3rem}
.tools label,form.inline label{font-size:.9rem}
input[type=text],input[type=password],select{font:inherit;padding:.3rem;border:1px solid #777;
border-radius:3px}
input.wording{width:34rem;max-width:100%}
button{font:inherit;padding:.3rem .8rem;border:1px solid #1f4e79;background:#eaf1f8;color:#10283d;
border-radius:3px;cursor:pointer}
button.primary{background:#1f4e79;color:#fff}
.suggestions{background:#fff8e5;border:1px solid #c9a227;padding:.5rem .8rem;margin:.8rem 0 1rem}
.suggestion{margin:.5rem 0;padding:.4rem 0;border-top:1px dashed #c9a227}
.suggestion:first-of-type{border-top:0}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:1rem}
.notice{border:2px solid #2f6b2f;background:#eef7ee;padding:.5rem 1rem}
.error{border:2px solid #a00000;background:#fbeeee;padding:.5rem 1rem;color:#600}
table{border-collapse:collapse;width:100%;font-size:.92rem}
td.when{white-space:nowrap}
th,td{border:1px solid #c5ced6;padding:.3rem .5rem;text-align:left;vertical-align:top}
nav.areas ul{list-style:none;padding:0;display:flex;gap:.4rem 1.4rem;flex-wrap:wrap}
.muted{color:#555}
label.block{display:block;font-weight:600;margin-top:1rem}
form.login input{width:100%;box-sizing:border-box}
"""

SERVER_ERROR_PAGE = """<!DOCTYPE html>
<html lang="fi"><head><meta charset="utf-8"><title>Virhe – Fel</title></head><body>
<h1>Palvelussa tapahtui virhe</h1>
<p>Muutosta ei voitu käsitellä. Lataa sivu uudelleen ja yritä uudestaan.</p>
<h1 lang="sv">Ett fel inträffade i tjänsten</h1>
<p lang="sv">Ändringen kunde inte behandlas. Ladda om sidan och försök igen.</p>
</body></html>
"""


def review_password() -> str:
    """The password of the review page: ``HYTETU_REVIEW_PASSWORD``, else the Prefect Secret
    block named in ``HYTETU_REVIEW_PASSWORD_BLOCK``. Raises StateError when neither is set
    (the page does not start without one) or the password is shorter than 8 characters."""
    value = os.environ.get(PASSWORD_ENV, "")
    where = PASSWORD_ENV
    block = os.environ.get(PASSWORD_BLOCK_ENV, "").strip()
    if not value and block:
        where = f"the Prefect Secret block {block}"
        try:
            from prefect.blocks.system import Secret

            secret: Any = Secret.load(block)  # sync in a sync context
            value = str(secret.get() or "")
        except Exception as e:  # an unknown block, no API: the set-up is wrong
            raise StateError(
                f"the review page cannot load its password from {where}: {type(e).__name__}"
            ) from None
    if not value:
        raise StateError(
            f"the review page needs a password: set {PASSWORD_ENV}, or {PASSWORD_BLOCK_ENV} "
            "to the name of a Prefect Secret block that holds it"
        )
    if len(value) < MIN_PASSWORD:
        raise StateError(f"the password in {where} is shorter than {MIN_PASSWORD} characters")
    return value


# --- the session cookie -------------------------------------------------------------------


@dataclass(frozen=True)
class Login:
    name: str
    sid: str


class Sessions:
    """Signed session cookies ``sid.issued.name.HMAC``: valid for ``max_age`` seconds and
    until logged out (the logged-out ids are kept in memory; the page is one process)."""

    def __init__(self, secret: bytes, max_age: int = SESSION_MAX_AGE) -> None:
        self.secret, self.max_age = secret, max_age
        self.ended: dict[str, float] = {}

    def _sign(self, body: str) -> str:
        key = hashlib.sha256(b"session|" + self.secret).digest()
        return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()

    def new(self, name: str) -> str:
        encoded = base64.urlsafe_b64encode(name.encode()).decode().rstrip("=")
        body = f"{secrets.token_urlsafe(18)}.{int(time.time())}.{encoded}"
        return f"{body}.{self._sign(body)}"

    def check(self, cookie: str | None) -> Login | None:
        parts = (cookie or "").split(".")
        if len(parts) != 4 or not parts[1].isdigit():
            return None
        sid, issued, encoded, signature = parts
        if not hmac.compare_digest(self._sign(".".join(parts[:3])), signature):
            return None
        if not 0 <= time.time() - int(issued) <= self.max_age or sid in self.ended:
            return None
        try:
            name = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        return Login(name, sid)

    def end(self, login: Login) -> None:
        now = time.time()
        self.ended = {k: t for k, t in self.ended.items() if now - t <= self.max_age}
        self.ended[login.sid] = now


def clean_name(value: str) -> str | None:
    """The coordinator's name as typed, or None when it is empty, too long or has control
    characters."""
    name = " ".join(value.split())
    if not name or len(name) > MAX_NAME or not name.isprintable():
        return None
    return name


# --- the page ---------------------------------------------------------------------------


def anchor(cell: str) -> str:
    """The HTML id of a cell's section (config keys hold no underscore)."""
    return "cell-" + cell.replace("/", "__")


def _percent(value: Any) -> int | None:
    return round(float(value) * 100) if isinstance(value, int | float) else None


def page_context(view: CycleView, lang: str, area: str | None = None) -> dict[str, Any]:
    """What the review pages show, from the newest compilation and the corrections: the
    overview (``area`` None: every cell's counts, the changes, the corrections) or one
    priority area's cells in full."""
    pas, sas, cells = view.matrix()
    latest = findings.latest_compilation(view)
    previous = findings.review_baseline(view) if latest is not None else None
    if previous is not None and latest is not None and previous.id == latest.id:
        previous = latest  # nothing since: no changes (not "the first compilation")
    result = latest.result if latest is not None else None
    labels: dict[str, str] = {}
    for s in view.sessions():
        labels[s.group.key if s.group else s.key] = view.session_title(s, lang)
    pa_names = {p.key: view.text(p.name, lang) for p in pas}
    sa_names = {a.key: view.text(a.name, lang) for a in sas}
    cell_names = {
        f"{p.key}/{a.key}": f"{pa_names[p.key]} – {sa_names[a.key]}"
        for p in pas
        for a in sas
        if (p.key, a.key) in cells
    }
    compiled = {
        f"{c['priority_area']}/{c['service_area']}": c for c in (result or {}).get("cells", [])
    }

    def names(keys: list[str]) -> list[str]:
        return [labels.get(k, k) for k in keys]

    areas: list[dict[str, Any]] = []
    for p in pas:
        area_cells = []
        for a in sas:
            if (p.key, a.key) not in cells:
                continue
            key = f"{p.key}/{a.key}"
            c = compiled.get(key, {})
            themes = []
            for t in c.get("themes", []):
                themes.append(
                    {
                        "text": t["text"],
                        "groups": names(t["groups"]),
                        "group_count": len(t["groups"]),
                        "members": [
                            {
                                "text": m["text"],
                                "group": m["group"],
                                "group_name": labels.get(m["group"], m["group"]),
                            }
                            for m in t["members"]
                        ],
                        "first": t["members"][0]["text"],
                        "common": bool(t.get("common")),
                        "common_by": t.get("common_by"),
                        "wording_by": t.get("wording_by"),
                        "confidence": _percent(t.get("confidence")),
                        "feedback": t.get("feedback", 0),
                    }
                )
            suggestions = [
                {
                    "a": x["a"],
                    "b": x["b"],
                    "groups_a": names(list(x.get("groups_a", []))),
                    "groups_b": names(list(x.get("groups_b", []))),
                    "score": _percent(x.get("score")),
                }
                for x in c.get("suggestions") or []
            ]
            area_cells.append(
                {
                    "key": key,
                    "anchor": anchor(key),
                    "name": sa_names[a.key],
                    "full_name": cell_names[key],
                    "goal": view.text(cells[(p.key, a.key)].goal, lang),
                    "themes": themes,
                    "common_count": sum(1 for t in themes if t["common"]),
                    "suggestions": suggestions,
                    "feedback": len(c.get("feedback", [])),
                }
            )
        areas.append({"key": p.key, "name": pa_names[p.key], "cells": area_cells})

    changes = None
    if result is not None and previous is not None:
        changes = [_named(x, cell_names, labels) for x in findings.changes(previous.result, result)]
    applied = {c["id"]: c.get("applied") for c in (result or {}).get("corrections", [])}
    corrections = [
        {
            "id": f.id,
            "kind": f.kind,
            "when": view.local(f.created_at),
            "who": f.actor,
            "payload": f.payload,
            "cell_name": cell_names.get(f.payload.get("cell") or "", f.payload.get("cell") or ""),
            "to_name": cell_names.get(f.payload.get("to") or "", ""),
            "group_name": labels.get(f.payload.get("group") or "", ""),
            "applied": applied.get(f.id),
        }
        for f in reversed(findings.corrections(view))
    ]
    return {
        "lang": lang,
        "other_lang": "sv" if lang == "fi" else "fi",
        "region": view.text(view.region.name, lang),
        "cycle_title": view.text(view.cycle.title, lang),
        # When they fall back to another language, the pages mark it (WCAG 3.1.2).
        "region_lang": fallback_language(view.region.name, lang, view.language),
        "cycle_title_lang": fallback_language(view.cycle.title, lang, view.language),
        # The findings are in the region's language: marked so when the page is not.
        "content_lang": view.language,
        "compiled_at": view.local(latest.created_at) if latest is not None else None,
        "threshold": (result or {}).get("threshold", 2),
        "areas": areas,
        "area": next((x for x in areas if x["key"] == area), None),
        "cell_choices": [(x["name"], [(c["key"], c["name"]) for c in x["cells"]]) for x in areas],
        "changes": changes,
        "corrections": corrections,
        "max_wording": findings.MAX_WORDING,
        "max_name": MAX_NAME,
    }


def login_context(view: CycleView, lang: str) -> dict[str, Any]:
    return {
        "lang": lang,
        "other_lang": "sv" if lang == "fi" else "fi",
        "region": view.text(view.region.name, lang),
        "cycle_title": view.text(view.cycle.title, lang),
        # When they fall back to another language, the pages mark it (WCAG 3.1.2).
        "region_lang": fallback_language(view.region.name, lang, view.language),
        "cycle_title_lang": fallback_language(view.cycle.title, lang, view.language),
        "max_name": MAX_NAME,
    }


def _named(change: dict[str, Any], cells: dict[str, str], groups: dict[str, str]) -> dict[str, Any]:
    """A ``findings.changes`` entry with the names of its cells and groups, for the page."""
    x = change | {
        "cell_name": cells.get(change["cell"], change["cell"]),
        "anchor": anchor(change["cell"]),
    }
    if "from" in x:
        x["from"] = [cells.get(k, k) for k in x["from"]]
    if "into" in x:
        x["into"] = [i | {"cell_name": cells.get(i["cell"], i["cell"])} for i in x["into"]]
    for key in ("added", "removed"):
        if key in x:
            x[key] = [m | {"group_name": groups.get(m["group"], m["group"])} for m in x[key]]
    return x


def _payload(form: dict[str, str]) -> tuple[str, dict[str, Any]] | str:
    """(kind, correction payload) from an action form, or an error code for the page."""
    kind = form.get("kind", "")
    if kind not in ACTIONS or not form.get("cell"):
        return "bad"
    cell = form["cell"]
    if kind in ("merge", "keep_apart"):
        return kind, {"cell": cell, "a": form.get("a", ""), "b": form.get("b", "")}
    if kind == "move":
        payload: dict[str, Any] = {
            "cell": cell,
            "text": form.get("text", ""),
            "to": form.get("to", ""),
        }
        if form.get("group"):
            payload["group"] = form["group"]
        return kind, payload
    if kind == "rename":
        wording = form.get("wording", "")
        try:
            wording = findings.clean_wording(wording)
        except StateError:
            text = wording.strip()
            if not text:
                return "wording_empty"
            return "wording_long" if len(text) > findings.MAX_WORDING else "wording_control"
        return kind, {"cell": cell, "text": form.get("text", ""), "wording": wording}
    return kind, {"cell": cell, "text": form.get("text", ""), "common": form.get("common") == "1"}


class Review:
    """The page's logic, independent of HTTP."""

    def __init__(self, url: str | None, region: str | None = None) -> None:
        self.url, self.region = url, region

    def languages(self) -> tuple[str, ...]:
        return LANGUAGES

    def default_language(self) -> str:
        with db.session_scope(self.url) as s:
            lang = cycle_view(s, self.region).language
        return lang if lang in LANGUAGES else "fi"

    def has_area(self, key: str) -> bool:
        with db.session_scope(self.url) as s:
            pas, _, _ = cycle_view(s, self.region).matrix()
            return any(p.key == key for p in pas)

    def render(
        self,
        template: str,
        lang: str,
        extra: dict[str, Any],
        full: bool = True,
        area: str | None = None,
    ) -> str:
        with db.session_scope(self.url) as s:
            view = cycle_view(s, self.region)
            base = page_context(view, lang, area) if full else login_context(view, lang)
            return view.render(template, lang, base | extra)

    def document(self, version_id: int, filename: str) -> tuple[bytes, str] | None:
        """A memo version of this cycle as the coordinator opens it: (content, media type)
        of its PDF, or of its HTML when ``filename`` ends in .html; None if there is none."""
        with db.session_scope(self.url) as s:
            view = cycle_view(s, self.region)
            version = s.get(db.MemoVersion, version_id)
            if version is None or version.memo.cycle_id != view.cycle.id:
                return None
            if filename == version.filename:
                return version.pdf, "application/pdf"
            if filename == version.filename.removesuffix(".pdf") + ".html":
                return version.html.encode(), "text/html; charset=utf-8"
            return None

    def act(self, actor: str, form: dict[str, str]) -> tuple[str, str]:
        """Store the correction and compile again, in one transaction. Returns (outcome,
        cell to go back to): outcome ``done:<kind>`` or an error code."""
        parsed = _payload(form)
        kind = parsed[0] if isinstance(parsed, tuple) else ""
        try:
            with db.session_scope(self.url) as s:
                view = cycle_view(s, self.region)
                _, _, cells = view.matrix()
                known = {f"{pa}/{sa}" for pa, sa in cells}
                cell = form.get("cell", "")
                if cell not in known:
                    return "bad", ""
                if isinstance(parsed, str):
                    return parsed, cell
                payload = parsed[1]
                # The page sends findings' exact texts; a text no longer there must not
                # resolve to another finding that merely contains it.
                here = {
                    " ".join(i.text.split()).casefold()
                    for i in findings.placed_findings(view)[cell]
                }
                named = [payload[k] for k in ("a", "b", "text") if k in payload]
                if any(" ".join(t.split()).casefold() not in here for t in named):
                    return "stale", cell
                findings.add_correction(view, kind, payload, actor=actor)
                findings.compile_and_store(view)
        except StateError as e:
            log.info("review: %s refused: %s", kind, e)
            return "stale", cell
        return f"done:{kind}", payload["to"] if kind == "move" else cell


def _next(value: str | None) -> str | None:
    """Where to go after logging in: a document of this page only, never another site."""
    if value and value.startswith("/documents/") and "//" not in value and "\\" not in value:
        return value
    return None


def _language(request: Request, form: dict[str, str] | None, default: str) -> str:
    lang = (form or {}).get("lang") or request.query_params.get("lang") or default
    return lang if lang in LANGUAGES else default


def create_app(
    url: str | None = None,
    *,
    password: str,
    secret: bytes | None = None,
    limits: RateLimits | None = None,
    trusted_proxies: str | Sequence[str] | None = None,
    rate_clock: Callable[[], float] = time.monotonic,
    region: str | None = None,
    login_attempts: int = LOGIN_ATTEMPTS,
) -> ASGIApp:
    """The review page's ASGI app. ``password``: what the coordinator types (see
    ``review_password``). ``secret`` signs the session cookies and CSRF tokens:
    HYTETU_REVIEW_SECRET, else random per process (a restart then logs everyone out).
    ``limits``: per-client rate limits of all requests (default 600 requests and 200
    changes in 10 minutes); login attempts have their own, tighter limit."""
    if not password:
        raise StateError("the review page needs a password")
    if secret is None:
        env = os.environ.get(SECRET_ENV)
        secret = env.encode() if env else secrets.token_bytes(32)
    proxies = parse_trusted_proxies(trusted_proxies)
    logic = Review(url, region)
    sessions = Sessions(secret)
    tokens = CsrfTokens(hashlib.sha256(b"csrf|" + secret).digest(), TOKEN_MAX_AGE)
    attempts = SlidingWindow(login_attempts, LOGIN_WINDOW, rate_clock)
    attempts_all = SlidingWindow(LOGIN_ATTEMPTS_ALL, LOGIN_WINDOW, rate_clock)

    def csrf_id(request: Request) -> tuple[str, bool]:
        current = request.cookies.get(CSRF_COOKIE)
        if current and len(current) <= 64:
            return current, False
        return secrets.token_urlsafe(24), True

    def cookie(response: Response, request: Request, name: str, value: str, age: int) -> None:
        response.set_cookie(
            name,
            value,
            max_age=age,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )

    def html(
        request: Request, body: str, status: int = 200, sid: tuple[str, bool] | None = None
    ) -> Response:
        response = HTMLResponse(body, status_code=status)
        if sid and sid[1]:
            cookie(response, request, CSRF_COOKIE, sid[0], SESSION_MAX_AGE)
        return response

    async def default_language() -> str:
        return await run_in_threadpool(logic.default_language)

    async def login_page(
        request: Request,
        lang: str,
        error: str = "",
        status: int = 200,
        after: str | None = None,
        name: str = "",
    ) -> Response:
        sid = csrf_id(request)
        body = await run_in_threadpool(
            logic.render,
            "review_login.html.j2",
            lang,
            {"token": tokens.new(sid[0]), "error": error, "name": name, "next": after or ""},
            False,
        )
        return html(request, body, status, sid)

    async def overview(request: Request) -> Response:
        return await page(request, None)

    async def area_page(request: Request) -> Response:
        key = request.path_params["key"]
        if not await run_in_threadpool(logic.has_area, key):
            return Response("not found", status_code=404)
        return await page(request, key)

    async def page(request: Request, area: str | None) -> Response:
        lang = _language(request, None, await default_language())
        login = sessions.check(request.cookies.get(SESSION_COOKIE))
        if login is None:
            return RedirectResponse(f"/login?{urlencode({'lang': lang})}", status_code=303)
        sid = csrf_id(request)
        q = request.query_params
        notice = {"code": q.get("done", ""), "error": q.get("error", ""), "cell": q.get("cell", "")}
        body = await run_in_threadpool(
            logic.render,
            "review.html.j2",
            lang,
            {"user": login.name, "token": tokens.new(sid[0]), "notice": notice},
            True,
            area,
        )
        return html(request, body, 200, sid)

    async def login(request: Request) -> Response:
        default = await default_language()
        if request.method != "POST":  # GET, or HEAD (Starlette answers it with GET)
            lang = _language(request, None, default)
            after = _next(request.query_params.get("next"))
            if sessions.check(request.cookies.get(SESSION_COOKIE)):
                where = after or f"/?{urlencode({'lang': lang})}"
                return RedirectResponse(where, status_code=303)
            return await login_page(request, lang, after=after)
        form = await read_form(request, LOGIN_FIELDS, MAX_BODY)
        if isinstance(form, Response):
            return form
        lang = _language(request, form, default)
        after = _next(form.get("next"))
        key = client_key(request.scope)
        wait = attempts.hit(key) or attempts_all.hit("*")
        if wait:
            log.warning("review: login attempts from %s refused for %d s", key, wait)
            return too_many(wait)
        if tokens.check(request.cookies.get(CSRF_COOKIE), form.get("token", "")) is None:
            return await login_page(request, lang, "token", 403, after)
        name = clean_name(form.get("name", ""))
        given = form.get("password", "").encode()
        if not hmac.compare_digest(given, password.encode()):
            log.warning("review: wrong password from %s", key)
            # The name stays filled in, so that only the password is to be typed again.
            return await login_page(request, lang, "password", 403, after, name or "")
        if name is None:
            return await login_page(request, lang, "name", 400, after)
        log.info("review: %s logged in", name)
        response = RedirectResponse(after or f"/?{urlencode({'lang': lang})}", status_code=303)
        cookie(response, request, SESSION_COOKIE, sessions.new(name), SESSION_MAX_AGE)
        return response

    async def logout(request: Request) -> Response:
        form = await read_form(request, ("token", "lang"), MAX_BODY)
        if isinstance(form, Response):
            return form
        lang = _language(request, form, await default_language())
        login = sessions.check(request.cookies.get(SESSION_COOKIE))
        if tokens.check(request.cookies.get(CSRF_COOKIE), form.get("token", "")) is None:
            return Response("forbidden", status_code=403)
        if login is not None:
            sessions.end(login)
        response = RedirectResponse(f"/login?{urlencode({'lang': lang})}", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    async def action(request: Request) -> Response:
        login = sessions.check(request.cookies.get(SESSION_COOKIE))
        form = await read_form(request, ACTION_FIELDS, MAX_BODY)
        if isinstance(form, Response):
            return form
        lang = _language(request, form, await default_language())
        if login is None:
            return await login_page(request, lang, "expired", 403)
        if tokens.check(request.cookies.get(CSRF_COOKIE), form.get("token", "")) is None:
            sid = csrf_id(request)
            body = await run_in_threadpool(
                logic.render,
                "review.html.j2",
                lang,
                {
                    "user": login.name,
                    "token": tokens.new(sid[0]),
                    "notice": {"code": "", "error": "token", "cell": ""},
                },
            )
            return html(request, body, 403, sid)
        outcome, cell = await run_in_threadpool(logic.act, login.name, form)
        query = {"lang": lang, "cell": cell}
        if outcome.startswith("done:"):
            query["done"] = outcome.removeprefix("done:")
        else:
            query["error"] = outcome
        where = f"/area/{quote(cell.partition('/')[0], safe='')}" if "/" in cell else "/"
        return RedirectResponse(f"{where}?{urlencode(query)}#{anchor(cell)}", status_code=303)

    async def document(request: Request) -> Response:
        """A memo's PDF or HTML, behind the login: the links of the review artifacts."""
        lang = _language(request, None, await default_language())
        if sessions.check(request.cookies.get(SESSION_COOKIE)) is None:
            query = urlencode({"lang": lang, "next": request.url.path})
            return RedirectResponse(f"/login?{query}", status_code=303)
        version_id, filename = request.path_params["version_id"], request.path_params["filename"]
        found = await run_in_threadpool(logic.document, version_id, filename)
        if found is None:
            return Response("not found", status_code=404)
        content, media_type = found
        disposition = f"inline; filename*=UTF-8''{quote(filename)}"
        return Response(
            content,
            media_type=media_type,
            headers={"content-disposition": disposition, "content-security-policy": DOCUMENT_CSP},
        )

    async def stylesheet(request: Request) -> Response:
        return Response(STYLESHEET, media_type="text/css")

    async def unavailable(request: Request, exc: Exception) -> Response:
        return Response(
            "Tarkistussivu ei ole käytössä: koontia ei ole. / "
            "Granskningssidan är inte i bruk: inget sammandrag finns.",
            status_code=503,
            media_type="text/plain; charset=utf-8",
        )

    async def server_error(request: Request, exc: Exception) -> Response:
        return HTMLResponse(SERVER_ERROR_PAGE, status_code=500)

    app: ASGIApp = Starlette(
        routes=[
            Route("/", overview, methods=["GET"]),
            Route("/area/{key}", area_page, methods=["GET"]),
            Route("/login", login, methods=["GET", "POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/action", action, methods=["POST"]),
            Route("/review.css", stylesheet, methods=["GET"]),
            Route("/documents/{version_id:int}/{filename}", document, methods=["GET"]),
        ],
        middleware=[
            Middleware(
                RateLimit,
                limits=limits or RateLimits(submissions=200, requests=600),
                clock=rate_clock,
            )
        ],
        exception_handlers={HytetuError: unavailable, Exception: server_error},
    )
    return behind_proxies(SecurityHeaders(app), proxies)


def serve(
    host: str = "127.0.0.1",
    port: int = 8001,
    url: str | None = None,
    *,
    trusted_proxies: str | Sequence[str] | None = None,
    region: str | None = None,
) -> None:
    """Run the review page of ``region`` (None: the only region loaded) with uvicorn
    (blocking). Refuses to start without a password or a loaded cycle."""
    import uvicorn

    password = review_password()
    with db.session_scope(url) as s:
        cycle_view(s, region)
    app = create_app(url, password=password, trusted_proxies=trusted_proxies, region=region)
    uvicorn.Server(server_config(app, host, port)).run()
