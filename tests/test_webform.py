"""The built-in feedback form: open only in the window, CSRF, limits, honeypot, headers,
Finnish and Swedish; and a real browser (Debian's chromium through Playwright)."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator
from datetime import datetime

import pytest
from conftest import helsinki, running
from sqlalchemy import func, select

with warnings.catch_warnings():  # Starlette nags about httpx vs httpx2; httpx is what we have
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from hytetu import db
from hytetu.feedback_import import RESPONDENT_TYPES
from hytetu.webform import TYPE_LABELS, create_app

OPEN = helsinki("2025-11-15 10:00")


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def url(loaded_copy: str) -> str:
    return loaded_copy


@pytest.fixture
def clock() -> Clock:
    return Clock(OPEN)


@pytest.fixture
def client(url: str, clock: Clock) -> TestClient:
    return TestClient(create_app(url, clock=clock, secret=b"test-secret"))


def token(html: str) -> str:
    match = re.search(r'name="token" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def responses(url: str) -> list[db.FeedbackResponse]:
    with db.session_scope(url) as s:
        rows = list(s.scalars(select(db.FeedbackResponse)))
        s.expunge_all()
        return rows


def valid(tok: str, **extra: str) -> dict[str, str]:
    return {
        "token": tok,
        "lang": "fi",
        "organisation": "Jämsän kaupunki",
        "respondent_type": "municipality",
        "municipality": "jamsa",
        "priority_area": "arjen-turvallisuus",
        "service_area": "ikaantyneet",
        "text": "Kaatumisten ehkäisy <script>alert(1)</script> – yhteinen malli.",
        "email": "hyte@jamsa.example",
        "website": "",
    } | extra


def test_every_respondent_type_has_fi_and_sv_labels() -> None:
    assert set(TYPE_LABELS["fi"]) == set(TYPE_LABELS["sv"]) == set(RESPONDENT_TYPES)


def test_open_form_has_token_cookie_and_security_headers(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert "Näkemyksesi" in page.text and "19.12.2025" in page.text
    assert "Jämsä" in page.text and "Jyväskylä ja Muurame" in page.text
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"
    cookie = page.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert client.get("/nowhere").headers["x-content-type-options"] == "nosniff"
    assert client.get("/form.css").headers["content-type"].startswith("text/css")


def test_swedish_form(client: TestClient) -> None:
    page = client.get("/?lang=sv")
    assert '<html lang="sv">' in page.text and "Din synpunkt" in page.text
    assert "Hela välfärdsområdet" in page.text
    assert '<html lang="fi">' in client.get("/?lang=xx").text


def test_submit_stores_one_response_and_shows_a_receipt(client: TestClient, url: str) -> None:
    tok = token(client.get("/").text)
    page = client.post("/", data=valid(tok))
    assert page.status_code == 200, page.text
    assert "Kiitos palautteestasi" in page.text and "15.11.2025 klo 10.00" in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text and "<script>" not in page.text
    [row] = responses(url)
    assert (row.channel, row.municipality_key, row.respondent_type, row.late) == (
        "form",
        "jamsa",
        "municipality",
        False,
    )
    assert row.respondent_email == "hyte@jamsa.example"
    assert row.received_at == OPEN
    assert f"2025-{row.id:05d}" in page.text
    # Sending the same form again (back button, double click) stores nothing new.
    again = client.post("/", data=valid(tok))
    assert again.status_code == 200 and f"2025-{row.id:05d}" in again.text
    assert len(responses(url)) == 1


def test_group_and_swedish_receipt(client: TestClient, url: str) -> None:
    tok = token(client.get("/?lang=sv").text)
    data = valid(tok, lang="sv", municipality="group:jyvaskyla-muurame", email="")
    page = client.post("/", data=data)
    assert "Tack för din respons" in page.text
    [row] = responses(url)
    assert (row.group_key, row.municipality_key, row.respondent_email) == (
        "jyvaskyla-muurame",
        None,
        None,
    )


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"text": "  "}, 400, "Kirjoita näkemyksesi."),
        ({"text": "x" * 5001}, 400, "Teksti on liian pitkä: 5001 merkkiä, enintään 5000."),
        ({"organisation": "y" * 301}, 400, "Teksti on liian pitkä: 301 merkkiä, enintään 300."),
        ({"municipality": "atlantis"}, 400, "Valitse vaihtoehto listasta."),
        ({"priority_area": "x"}, 400, "Valitse vaihtoehto listasta."),
        ({"email": "ei osoite"}, 400, "Tarkista sähköpostiosoite"),
        ({"token": "forged.1.abc"}, 403, "Lomakkeen tarkiste ei kelpaa"),
    ],
)
def test_invalid_input_is_refused_and_the_form_kept(
    client: TestClient, url: str, change: dict[str, str], status: int, message: str
) -> None:
    tok = token(client.get("/").text)
    page = client.post("/", data=valid(tok, **change))
    assert page.status_code == status
    assert message in page.text
    if "text" not in change:  # what was typed stays in the form
        assert "Kaatumisten ehkäisy &lt;script&gt;" in page.text
    assert responses(url) == []


def test_token_is_bound_to_the_browser_cookie(client: TestClient, url: str) -> None:
    tok = token(client.get("/").text)
    client.cookies.clear()
    assert client.post("/", data=valid(tok)).status_code == 403
    other = TestClient(client.app)
    other.get("/")
    assert other.post("/", data=valid(tok)).status_code == 403
    assert responses(url) == []


def test_honeypot_thanks_the_bot_and_stores_nothing(client: TestClient, url: str) -> None:
    tok = token(client.get("/").text)
    page = client.post("/", data=valid(tok, website="http://spam.example"))
    assert page.status_code == 200 and "Kiitos" in page.text
    assert responses(url) == []


def test_body_and_encoding_limits(client: TestClient) -> None:
    tok = token(client.get("/").text)
    big = client.post(
        "/",
        content=b"text=" + b"a" * 70_000,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert big.status_code == 413
    multipart = client.post("/", files={"text": ("a.txt", b"x")}, data={"token": tok})
    assert multipart.status_code == 415


def test_closed_before_and_after_the_window(client: TestClient, clock: Clock, url: str) -> None:
    clock.at = helsinki("2025-10-22 23:59")
    page = client.get("/")
    assert "ei ole vielä auki" in page.text and "23.10.2025" in page.text
    assert 'name="text"' not in page.text
    clock.at = OPEN
    tok = token(client.get("/").text)
    clock.at = helsinki("2025-12-20 00:00")
    page = client.post("/", data=valid(tok))
    assert page.status_code == 403 and "vastausaika päättyi" in page.text.lower()
    assert "Svarstiden gick ut" in client.get("/?lang=sv").text
    assert responses(url) == []


def test_last_minute_in_winter_time_is_on_time(client: TestClient, clock: Clock, url: str) -> None:
    tok = token(client.get("/").text)
    clock.at = helsinki("2025-12-19 23:59:59")
    assert client.post("/", data=valid(tok)).status_code == 200
    [row] = responses(url)
    assert row.late is False and row.received_at.isoformat() == "2025-12-19T21:59:59+00:00"


def test_without_a_cycle_the_form_says_it_is_not_in_use(sqlite_url: str) -> None:
    from hytetu.migrate import upgrade

    upgrade(sqlite_url)
    page = TestClient(create_app(sqlite_url)).get("/")
    assert page.status_code == 503 and "ei ole käytössä" in page.text
    assert page.headers["x-frame-options"] == "DENY"


# --- a real browser -----------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture
def served(url: str, clock: Clock) -> Iterator[str]:
    with running(create_app(url, clock=clock, secret=b"browser-test")) as base:
        yield base


@pytest.fixture
def browser() -> Iterator[object]:
    if not os.path.exists(CHROMIUM) and os.environ.get("CI") != "true":
        pytest.skip("no /usr/bin/chromium (apt-get install chromium); CI=true runs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def test_browser_fills_in_submits_and_the_deadline_refuses(
    browser, served: str, clock: Clock, url: str
) -> None:
    page = browser.new_page()
    page.goto(served + "/")
    page.fill("#organisation", "Keuruun Seudun Omaishoitajat ry")
    page.select_option("#respondent_type", "ngo")
    page.select_option("#municipality", label="Keuruu")
    page.select_option("#priority_area", "mielen-hyvinvointi")
    page.select_option("#service_area", "ikaantyneet")
    page.fill("#text", "Omaishoitajien vertaisryhmät tarvitsevat jatkuvan rahoituksen.")
    page.fill("#email", "raija.monkkonen@keuruun-omaishoitajat.example")
    page.click("button[type=submit]")
    page.wait_for_selector("#reference")
    assert "Kiitos palautteestasi" in page.content()
    reference = page.inner_text("#reference")
    [row] = responses(url)
    assert reference == f"2025-{row.id:05d}"
    assert (row.respondent_org, row.municipality_key, row.channel) == (
        "Keuruun Seudun Omaishoitajat ry",
        "keuruu",
        "form",
    )
    # The same form, opened before the deadline and sent after it, is refused.
    page.goto(served + "/?lang=sv")
    page.fill("#text", "För sent.")
    clock.at = helsinki("2025-12-20 00:00")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    assert "Svarstiden gick ut" in page.content()
    page.goto(served + "/")
    assert "Palautteen vastausaika päättyi" in page.content()
    assert page.locator("#text").count() == 0
    with db.session_scope(url) as s:
        assert s.scalar(select(func.count()).select_from(db.FeedbackResponse)) == 1


def test_a_failed_submit_names_links_and_focuses_the_faulty_fields(client: TestClient) -> None:
    tok = token(client.get("/").text)
    html = client.post("/", data=valid(tok, text="   ", email="hyte@jamsa")).text
    summary = html[html.index('class="errors"') : html.index("<form")]
    assert re.findall(r'<a href="#(\w+)">', summary) == ["text", "email"]
    assert "Näkemyksesi: Kirjoita näkemyksesi." in summary
    text = re.search(r"<textarea [^>]*>", html)
    email = re.search(r'<input id="email"[^>]*>', html)
    assert text and email
    assert 'aria-invalid="true"' in text[0] and " autofocus" in text[0]
    assert 'aria-describedby="text-hint text-error"' in text[0]
    assert 'aria-invalid="true"' in email[0] and "autofocus" not in email[0]
    assert 'autocomplete="email"' in email[0]
    assert html.count("autofocus") == 1 and 'id="text-error"' in html
    assert 'id="text-hint"' in html and 'autocomplete="organization"' in html
    assert '<label for="text">Näkemyksesi (pakollinen)</label>' in html


def test_a_finnish_only_region_offers_no_swedish_and_marks_finnish_fallbacks(
    client: TestClient,
) -> None:
    fi = client.get("/").text
    assert "<nav" not in fi and 'lang="sv"' not in fi  # keski-suomi: languages [fi]
    sv = client.get("/?lang=sv").text
    assert '<html lang="sv">' in sv and "Din synpunkt (obligatorisk)" in sv
    assert '<h1 lang="fi">Hyvinvoinnin' in sv
    assert '<span lang="fi">Keski-Suomen hyvinvointialue</span> samlar' in sv
    assert '<option value="jamsa" lang="fi">Jämsä</option>' in sv
    assert re.findall(r'<a href="/\?lang=(\w+)"', sv) == ["fi"]
