"""The built-in feedback form (palautelomake): a small Starlette app, in Finnish and Swedish.

Open only while the feedback window is open (``opens`` 00:00 to the end of the deadline
day, region's time zone); before and after, a page says so and a POST is refused. A
response is checked, stored in one transaction and answered with a receipt. Protection:
a signed double-submit CSRF token (cookie + form field, HMAC), limits on the body and each
field, a honeypot field for bots, per-client rate limits (429 with Retry-After), security
headers (CSP, frame-ancestors, nosniff) on every response, a plain 500 page that shows no
exception, and X-Forwarded-For/-Proto honoured only from trusted proxies (uvicorn's
ProxyHeadersMiddleware). There is no admin view: the form only accepts answers. Run it
with ``hytetu serve-feedback``.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from markupsafe import Markup
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from hytetu import db, feedback
from hytetu.config import FeedbackImport, fallback_language
from hytetu.errors import HytetuError
from hytetu.state import CycleView, cycle_view
from hytetu.web.security import (  # noqa: F401 (HSTS, server_config: part of this API)
    HSTS,
    CsrfTokens,
    RateLimit,
    RateLimits,
    SecurityHeaders,
    behind_proxies,
    parse_trusted_proxies,
    read_form,
    server_config,
)

LANGUAGES = ("fi", "sv")
COOKIE = "hytetu_form"
TOKEN_MAX_AGE = 4 * 3600  # seconds a form may stay open before it must be reloaded
MAX_BODY = 64 * 1024
LIMITS = {
    "organisation": 300,
    "email": 320,
    "text": FeedbackImport().max_text,
    "respondent_type": 40,
    "municipality": 100,
    "priority_area": 100,
    "service_area": 100,
    "lang": 2,
    "token": 200,
    "website": 200,
}
HONEYPOT = "website"
# Shown for any unexpected error: no exception text, path or SQL ever reaches the client.
SERVER_ERROR_PAGE = """<!DOCTYPE html>
<html lang="fi"><head><meta charset="utf-8"><title>Virhe – Fel</title></head><body>
<h1>Palvelussa tapahtui virhe</h1>
<p>Vastaustasi ei voitu käsitellä. Yritä hetken kuluttua uudelleen. Jos virhe toistuu,
ota yhteyttä hyvinvointialueen yhteyshenkilöön.</p>
<h1 lang="sv">Ett fel inträffade i tjänsten</h1>
<p lang="sv">Ditt svar kunde inte behandlas. Försök igen om en stund. Om felet upprepas,
kontakta välfärdsområdets kontaktperson.</p>
</body></html>
"""
TYPE_LABELS = {
    "fi": {
        "municipality": "Kunta",
        "ngo": "Järjestö",
        "parish": "Seurakunta",
        "employment_area": "Työllisyysalue",
        "company": "Yritys tai palveluntuottaja",
        "county_unit": "Hyvinvointialue",
        "public_body": "Muu julkinen toimija",
        "resident": "Asukas",
        "other": "Muu",
    },
    "sv": {
        "municipality": "Kommun",
        "ngo": "Organisation eller förening",
        "parish": "Församling",
        "employment_area": "Sysselsättningsområde",
        "company": "Företag eller tjänsteproducent",
        "county_unit": "Välfärdsområde",
        "public_body": "Annan offentlig aktör",
        "resident": "Invånare",
        "other": "Annan",
    },
}
MESSAGES = {
    "fi": {
        "text_required": "Kirjoita näkemyksesi.",
        "too_long": "Teksti on liian pitkä: {length} merkkiä, enintään {limit}.",
        "bad_choice": "Valitse vaihtoehto listasta.",
        "bad_email": "Tarkista sähköpostiosoite (esim. nimi@esimerkki.example).",
        "token": "Lomakkeen tarkiste ei kelpaa tai lomake on ollut auki liian kauan. "
        "Tarkista tiedot ja lähetä uudelleen.",
    },
    "sv": {
        "text_required": "Skriv din synpunkt.",
        "too_long": "Texten är för lång: {length} tecken, högst {limit}.",
        "bad_choice": "Välj ett alternativ i listan.",
        "bad_email": "Kontrollera e-postadressen (t.ex. namn@exempel.example).",
        "token": "Formulärets kontrollkod är ogiltig eller formuläret har varit öppet för "
        "länge. Kontrollera uppgifterna och skicka igen.",
    },
}
STYLESHEET = """
body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;
line-height:1.5;color:#1a1a1a}
h1{font-size:1.6rem}label{display:block;font-weight:600;margin-top:1rem}
input,select,textarea{width:100%;box-sizing:border-box;padding:.5rem;font:inherit}
textarea{min-height:12rem}.hint{color:#555;font-size:.9rem;margin:.2rem 0}
.error{color:#a00000;font-weight:600}.errors{border:2px solid #a00000;padding:.5rem 1rem}
button{margin-top:1.5rem;padding:.6rem 1.4rem;font:inherit;font-weight:600}
.trap{position:absolute;left:-10000px;width:1px;height:1px;overflow:hidden}
.receipt{border:2px solid #2f6b2f;padding:1rem;overflow-wrap:anywhere}nav{text-align:right}
.errors h2{font-size:1.1rem;margin:.3rem 0}.errors a{color:#a00000}
:focus{outline:3px solid #1a56a0;outline-offset:2px}
"""
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass
class Page:
    status: int
    html: str
    set_cookie: str | None = None


@dataclass
class FormState:
    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


class FeedbackForm:
    """The form's logic, independent of HTTP: what to show and what to store."""

    def __init__(
        self,
        url: str | None,
        clock: Callable[[], datetime],
        secret: bytes,
        region: str | None = None,
    ) -> None:
        self.url = url
        self.clock = clock
        self.secret = secret
        self.tokens = CsrfTokens(secret, TOKEN_MAX_AGE)
        self.region = region  # the region whose form this is; None: the only one loaded

    # --- tokens ---------------------------------------------------------------------

    def new_token(self, sid: str) -> str:
        return self.tokens.new(sid)

    def check_token(self, sid: str | None, token: str) -> str | None:
        """The token's nonce when it is valid for this browser's cookie, else None."""
        return self.tokens.check(sid, token)

    # --- pages ----------------------------------------------------------------------

    def _context(self, view: CycleView, lang: str) -> dict[str, Any]:
        pas, sas, _ = view.matrix()
        municipalities = view.session.scalars(
            select(db.Municipality).filter_by(region_id=view.region.id, active=True)
        )
        groups = view.session.scalars(
            select(db.MunicipalityGroup).filter_by(region_id=view.region.id, active=True)
        )

        def choice(key: str, name: dict[str, str] | None) -> tuple[str, str, str | None]:
            """(value, label, the label's language when it is a fallback)"""
            return key, view.text(name, lang), fallback_language(name, lang, view.language)

        places = sorted((choice(m.key, m.name) for m in municipalities), key=lambda x: x[1])
        group_places = sorted(
            (choice(f"group:{g.key}", g.name) for g in groups), key=lambda x: x[1]
        )
        return {
            "lang": lang,
            # The switch offers only the region's other languages.
            "other_langs": [x for x in view.region.languages if x != lang and x in LANGUAGES],
            "region": view.text(view.region.name, lang),
            "region_html": _marked(
                view.text(view.region.name, lang),
                fallback_language(view.region.name, lang, view.language),
            ),
            "cycle_title": view.text(view.cycle.title, lang),
            "cycle_title_lang": fallback_language(view.cycle.title, lang, view.language),
            "plan_period": view.cycle.plan_period or "",
            "opens": view.cycle.feedback_opens,
            "deadline": view.cycle.feedback_deadline,
            "types": [(k, v, None) for k, v in TYPE_LABELS[lang].items()],
            "places": places,
            "group_places": group_places,
            "priority_areas": [choice(p.key, p.name) for p in pas],
            "service_areas": [choice(a.key, a.name) for a in sas],
            "limits": LIMITS,
            "honeypot": HONEYPOT,
        }

    def _state(self, view: CycleView, now: datetime) -> str:
        """before | open | closed"""
        if now < feedback.opens_at(view):
            return "before"
        if now >= feedback.closes_at(view) or view.cycle.feedback_closed_at is not None:
            return "closed"
        return "open"

    def show(self, lang: str, sid: str | None) -> Page:
        with db.session_scope(self.url) as s:
            view = cycle_view(s, self.region)
            now = self.clock()
            state = self._state(view, now)
            context = self._context(view, lang)
            if state != "open":
                return Page(
                    200, view.render("form_closed.html.j2", lang, context | {"state": state})
                )
            cookie = None
            if not sid:
                sid = cookie = secrets.token_urlsafe(24)
            html = view.render(
                "form.html.j2",
                lang,
                context | {"values": {}, "errors": {}, "token": self.new_token(sid)},
            )
            return Page(200, html, set_cookie=cookie)

    def submit(self, lang: str, sid: str | None, form: dict[str, str]) -> Page:
        with db.session_scope(self.url) as s:
            view = cycle_view(s, self.region)
            now = self.clock()
            context = self._context(view, lang)
            state = self._state(view, now)
            if state != "open":
                return Page(
                    403, view.render("form_closed.html.j2", lang, context | {"state": state})
                )
            texts = MESSAGES[lang]
            values = {k: form.get(k, "") for k in LIMITS}
            nonce = self.check_token(sid, values["token"])
            errors = self._validate(view, values, context, texts)
            if nonce is None:
                errors["token"] = texts["token"]
            if errors:
                cookie = None
                if not sid:
                    sid = cookie = secrets.token_urlsafe(24)
                html = view.render(
                    "form.html.j2",
                    lang,
                    context | {"values": values, "errors": errors, "token": self.new_token(sid)},
                )
                return Page(403 if "token" in errors else 400, html, set_cookie=cookie)
            assert nonce is not None
            if values[HONEYPOT].strip():
                # A bot filled the hidden field: thank it and store nothing.
                return Page(
                    200,
                    view.render(
                        "form_receipt.html.j2",
                        lang,
                        context | {"reference": "", "received": view.local(now), "response": None},
                    ),
                )
            row = self._store(view, values, nonce, now)
            return Page(
                200,
                view.render(
                    "form_receipt.html.j2",
                    lang,
                    context
                    | {
                        "reference": f"{view.cycle.year}-{row.id:05d}",
                        "received": view.local(row.received_at),
                        "response": {
                            "organisation": row.respondent_org or "",
                            "text": row.text,
                            "email": bool(row.respondent_email),
                        },
                    },
                ),
            )

    def _validate(
        self, view: CycleView, values: dict[str, str], context: dict[str, Any], texts: dict
    ) -> dict[str, str]:
        errors: dict[str, str] = {}
        for name, limit in LIMITS.items():
            value = _CONTROL.sub("", values[name].replace("\r\n", "\n")).strip()
            values[name] = value
            if len(value) > limit:
                errors[name] = texts["too_long"].format(length=len(value), limit=limit)
        if not values["text"] and "text" not in errors:
            errors["text"] = texts["text_required"]
        choices = {
            "respondent_type": {c[0] for c in context["types"]},
            "municipality": {c[0] for c in context["places"] + context["group_places"]},
            "priority_area": {c[0] for c in context["priority_areas"]},
            "service_area": {c[0] for c in context["service_areas"]},
        }
        for name, allowed in choices.items():
            if values[name] and values[name] not in allowed and name not in errors:
                errors[name] = texts["bad_choice"]
        if values["email"] and "email" not in errors and not _EMAIL.match(values["email"]):
            errors["email"] = texts["bad_email"]
        return errors

    def _store(
        self, view: CycleView, values: dict[str, str], nonce: str, now: datetime
    ) -> db.FeedbackResponse:
        """One transaction (the session scope); a double submit shows the first receipt."""
        fingerprint = hashlib.sha256(f"form:{nonce}".encode()).hexdigest()
        existing = view.session.scalars(
            select(db.FeedbackResponse).filter_by(cycle_id=view.cycle.id, fingerprint=fingerprint)
        ).first()
        if existing is not None:
            return existing
        place = values["municipality"]
        row = db.FeedbackResponse(
            cycle_id=view.cycle.id,
            fingerprint=fingerprint,
            respondent_org=values["organisation"] or None,
            respondent_type=values["respondent_type"] or None,
            respondent_email=values["email"] or None,
            municipality_key=place if place and not place.startswith("group:") else None,
            group_key=place.removeprefix("group:") if place.startswith("group:") else None,
            priority_area_key=values["priority_area"] or None,
            service_area_key=values["service_area"] or None,
            text=values["text"],
            received_at=now,
            channel="form",
            late=feedback.is_late(view, now),
        )
        view.session.add(row)
        view.session.flush()
        db.audit(view.session, "feedback.form", f"response {row.id}", channel="form")
        return row


def _marked(text: str, lang: str | None) -> Markup | str:
    """``text``, in a span that names its language when it is a fallback (WCAG 3.1.2)."""
    return Markup('<span lang="{}">{}</span>').format(lang, text) if lang else text


def _language(request: Request, form: dict[str, str] | None = None) -> str:
    lang = (form or {}).get("lang") or request.query_params.get("lang") or "fi"
    return lang if lang in LANGUAGES else "fi"


def create_app(
    url: str | None = None,
    *,
    clock: Callable[[], datetime] | None = None,
    secret: bytes | None = None,
    limits: RateLimits | None = None,
    trusted_proxies: str | Sequence[str] | None = None,
    rate_clock: Callable[[], float] = time.monotonic,
    region: str | None = None,
) -> ASGIApp:
    """The ASGI app. ``clock`` gives the current time (tests simulate the year with it);
    ``secret`` signs the CSRF tokens: HYTETU_FORM_SECRET, else random per process (forms
    opened before a restart must then be sent again). ``limits``: per-client rate limits
    (default ``RateLimits()``). ``trusted_proxies``: addresses or networks of the reverse
    proxies whose X-Forwarded-For and X-Forwarded-Proto are believed; default none, so
    a client cannot pretend to be another by sending those headers itself."""
    proxies = parse_trusted_proxies(trusted_proxies)
    if secret is None:
        env = os.environ.get("HYTETU_FORM_SECRET")
        secret = env.encode() if env else secrets.token_bytes(32)
    logic = FeedbackForm(url, clock or db.utcnow, secret, region)

    def respond(page: Page, request: Request) -> Response:
        response = HTMLResponse(page.html, status_code=page.status)
        if page.set_cookie:
            response.set_cookie(
                COOKIE,
                page.set_cookie,
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
                path="/",
            )
        return response

    async def form_page(request: Request) -> Response:
        try:
            return await _form_page(request)
        except HytetuError:  # no cycle loaded yet
            return Response(
                "Palautelomake ei ole käytössä. / Responsformuläret är inte i bruk.",
                status_code=503,
                media_type="text/plain; charset=utf-8",
            )

    async def _form_page(request: Request) -> Response:
        if request.method == "GET":
            page = await run_in_threadpool(
                logic.show, _language(request), request.cookies.get(COOKIE)
            )
            return respond(page, request)
        form = await read_form(request, list(LIMITS), MAX_BODY)
        if isinstance(form, Response):
            return form
        page = await run_in_threadpool(
            logic.submit, _language(request, form), request.cookies.get(COOKIE), form
        )
        return respond(page, request)

    async def stylesheet(request: Request) -> Response:
        return Response(STYLESHEET, media_type="text/css")

    async def server_error(request: Request, exc: Exception) -> Response:
        # Starlette's ServerErrorMiddleware logs the traceback on the server after this.
        return HTMLResponse(SERVER_ERROR_PAGE, status_code=500)

    app: ASGIApp = Starlette(
        routes=[
            Route("/", form_page, methods=["GET", "POST"]),
            Route("/form.css", stylesheet, methods=["GET"]),
        ],
        middleware=[Middleware(RateLimit, limits=limits or RateLimits(), clock=rate_clock)],
        exception_handlers={Exception: server_error},
    )
    app = behind_proxies(SecurityHeaders(app), proxies)
    return app


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    url: str | None = None,
    *,
    limits: RateLimits | None = None,
    trusted_proxies: str | Sequence[str] | None = None,
    region: str | None = None,
) -> None:
    """Run the form of ``region`` (None: the only region loaded) with uvicorn (blocking);
    with several regions, one form process per region."""
    import uvicorn

    with db.session_scope(url) as s:
        cycle_view(s, region)  # no cycle, or no region named among several: fail at start
    app = create_app(url, limits=limits, trusted_proxies=trusted_proxies, region=region)
    uvicorn.Server(server_config(app, host, port)).run()
