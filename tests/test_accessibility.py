"""WCAG 2.1 AA: axe-core (from npm, in .ci/node/) in Debian's chromium on every page hytetu
serves (the feedback form in each state and language, the review page, a memo's HTML), and
the keyboard: Tab order, a visible focus, the first faulty field focused after a failed
submit. See docs/accessibility.md."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLE, helsinki, load_copy, running
from test_webform import CHROMIUM, CHROMIUM_ARGS, OPEN, Clock

from hytetu import db
from hytetu.state import cycle_view
from hytetu.web.review import create_app as review_app
from hytetu.webform import create_app as form_app

AXE = Path(__file__).parent.parent / ".ci" / "node" / "node_modules" / "axe-core" / "axe.min.js"
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
PASSWORD = "oikea-salasana-2025"
# The form's fields in the order a keyboard user meets them.
FIELDS = ["organisation", "respondent_type", "municipality", "priority_area", "service_area"]
FIELDS += ["text", "email"]


@pytest.fixture(scope="module")
def axe() -> Path:
    if not AXE.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{AXE} missing: .ci/npm-packages installs axe-core")
        pytest.skip(f"axe-core is not installed in {AXE.parent} (run .ci/npm-packages)")
    return AXE


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """test_webform's browser, once for the module."""
    if not os.path.exists(CHROMIUM) and os.environ.get("CI") != "true":
        pytest.skip("no /usr/bin/chromium (apt-get install chromium); CI=true runs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def context(browser) -> Iterator[Any]:
    """One browser context for the module; bypass_csp lets the test inject axe-core into
    pages whose CSP forbids every script (the pages themselves are served unchanged)."""
    ctx = browser.new_context(bypass_csp=True, viewport={"width": 1024, "height": 800})
    ctx.set_default_timeout(10_000)
    yield ctx
    ctx.close()


def violations(page: Any, axe: Path) -> list[str]:
    """axe-core's WCAG 2.1 A/AA violations on the page, as 'rule: target' lines."""
    page.add_script_tag(path=str(axe))
    result = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", TAGS
    )
    return [
        f"{v['id']} ({v['impact']}): {' '.join(map(str, n['target']))}"
        for v in result["violations"]
        for n in v["nodes"]
    ]


def check(page: Any, axe: Path, name: str, found: dict[str, list[str]]) -> None:
    found[name] = violations(page, axe)


@pytest.fixture(scope="module")
def form_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The Finnish-only example (keski-suomi) loaded: its form, in a private database."""
    base = tmp_path_factory.mktemp("a11y-form")
    url = load_copy(base)
    yield url
    db.dispose(url)


@pytest.fixture(scope="module")
def form(form_url: str) -> Iterator[tuple[str, Clock]]:
    clock = Clock(OPEN)
    with running(form_app(form_url, clock=clock, secret=b"a11y-test")) as base:
        yield base, clock


def form_pages(page: Any, base: str, clock: Clock, lang: str) -> Iterator[str]:
    """Opens each state of the form in ``lang`` in turn, yielding its name."""
    clock.at = OPEN
    page.goto(f"{base}/?lang={lang}")
    yield f"form {lang}: empty"
    # What the browser lets through and the server refuses: only spaces, an address
    # without a domain.
    page.fill("#text", "   ")
    page.fill("#email", "hyte@jamsa")
    page.click("button[type=submit]")
    page.wait_for_selector(".errors")
    yield f"form {lang}: errors after a failed submit"
    page.fill("#text", "Pitkä osoite " + "https://www.esimerkki.example/" + "a" * 300)
    page.fill("#email", "hyte@jamsa.example")
    page.click("button[type=submit]")
    page.wait_for_selector("#reference")
    yield f"form {lang}: receipt"
    clock.at = helsinki("2025-12-20 00:00")
    page.goto(f"{base}/?lang={lang}")
    yield f"form {lang}: closed"
    clock.at = helsinki("2025-10-01 09:00")
    page.goto(f"{base}/?lang={lang}")
    yield f"form {lang}: not yet open"
    clock.at = OPEN


def report(found: dict[str, list[str]]) -> str:
    bad = {k: v for k, v in found.items() if v}
    return "axe-core violations:\n" + "\n".join(
        f"{name}:\n  " + "\n  ".join(lines) for name, lines in bad.items()
    )


@pytest.mark.parametrize("lang", ["fi", "sv"])
def test_every_state_of_the_form_has_no_axe_violations(context, axe, form, lang: str) -> None:
    base, clock = form
    context.clear_cookies()
    page = context.new_page()
    found: dict[str, list[str]] = {}
    for name in form_pages(page, base, clock, lang):
        check(page, axe, name, found)
    page.close()
    assert len(found) == 5
    assert not any(found.values()), report(found)


BILINGUAL = EXAMPLE.parent / "pohjanmaa-2026"


def test_the_bilingual_regions_form_offers_its_other_language_without_violations(
    context, axe, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Pohjanmaa (sv, fi): the switch offers the other language, and nothing falls back."""
    base = tmp_path_factory.mktemp("a11y-bilingual")
    url = load_copy(base, BILINGUAL)
    clock = Clock(helsinki("2026-11-02 10:00"))
    found: dict[str, list[str]] = {}
    with running(form_app(url, clock=clock, secret=b"a11y-test")) as served:
        page = context.new_page()
        for lang, other in (("sv", "fi"), ("fi", "sv")):
            page.goto(f"{served}/?lang={lang}")
            assert page.locator("nav a").evaluate_all("a => a.map(x => x.lang)") == [other]
            assert page.locator("main [lang]").count() == 0
            check(page, axe, f"bilingual form {lang}: empty", found)
        page.close()
    db.dispose(url)
    assert not any(found.values()), report(found)


def test_axe_reports_what_it_finds(context, axe) -> None:
    """The check can fail: a field without a label and an image without text are found."""
    page = context.new_page()
    page.set_content('<html lang="fi"><title>x</title><main><input id="x"><img src="a.png"></main>')
    rules = {line.split(" ")[0] for line in violations(page, axe)}
    page.close()
    assert {"label", "image-alt"} <= rules


@pytest.fixture(scope="module")
def review(year: tuple[str, Path]) -> Iterator[tuple[str, int, str]]:
    """The review page of the simulated year (rendered drafts), and one memo's HTML."""
    from hytetu.memos import drafts

    url, _ = year
    with db.session_scope(url) as s:
        version = next(v for v in drafts(cycle_view(s)) if "jamsa" in v.filename)
        vid, name = version.id, version.filename.removesuffix(".pdf") + ".html"
    with running(review_app(url, password=PASSWORD, secret=b"a11y-review")) as base:
        yield base, vid, name


@pytest.mark.parametrize("lang", ["fi", "sv"])
def test_the_review_and_document_pages_have_no_axe_violations(
    context, axe, review, lang: str
) -> None:
    base, vid, name = review
    context.clear_cookies()
    page = context.new_page()
    found: dict[str, list[str]] = {}
    page.goto(f"{base}/login?lang={lang}")
    check(page, axe, f"review {lang}: login", found)
    page.fill("#password", "väärä")
    page.fill("#name", "Kaija Koordinaattori")
    with page.expect_navigation():
        page.click("button[type=submit]")
    check(page, axe, f"review {lang}: login, wrong password", found)
    # The name is kept; the password is focused and marked invalid.
    assert page.input_value("#name") == "Kaija Koordinaattori"
    assert page.evaluate("document.activeElement.id") == "password"
    assert page.get_attribute("#password", "aria-invalid") == "true"
    page.fill("#password", PASSWORD)
    with page.expect_navigation():
        page.click("button[type=submit]")
    check(page, axe, f"review {lang}: overview", found)
    area = page.locator("a[href^='/area/']").first.get_attribute("href")
    page.goto(base + area)
    check(page, axe, f"review {lang}: area page {area}", found)
    if lang == "fi":  # the memo is in Finnish whatever the page's language
        page.goto(f"{base}/documents/{vid}/{name}")
        check(page, axe, f"document: {name}", found)
    page.close()
    assert not any(found.values()), report(found)


# The focused element and whether its computed style shows a focus indicator.
FOCUS = """() => { const e = document.activeElement, s = getComputedStyle(e);
  const outline = s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0;
  return [e.id || e.tagName.toLowerCase(), outline || s.boxShadow !== 'none']; }"""


def _autofocused(page) -> None:
    """Chromium applies ``autofocus`` at its next rendering update, not when the page has
    loaded: wait (up to 5 s) until some element has the focus before reading which."""
    page.wait_for_function("document.activeElement !== document.body", timeout=5000)


def test_the_keyboard_reaches_every_field_in_order_sees_focus_and_lands_on_the_error(
    context, form
) -> None:
    base, clock = form
    clock.at = OPEN
    context.clear_cookies()
    page = context.new_page()
    page.goto(base + "/")
    reached = []
    for _ in range(len(FIELDS) + 1):
        page.keyboard.press("Tab")
        reached.append(page.evaluate(FOCUS))
    # The honeypot (tabindex=-1) is skipped; each stop shows a focus indicator.
    assert reached == [[name, True] for name in FIELDS] + [["button", True]]
    # A failed submit, sent from the keyboard: the first faulty field has the focus.
    page.focus("#text")
    page.keyboard.type("   ")
    page.focus("#email")
    page.keyboard.type("hyte@jamsa")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    _autofocused(page)
    assert page.evaluate(FOCUS) == ["text", True]
    # Its summary's link moves the focus to the field.
    page.click("a[href='#email']")
    assert page.evaluate(FOCUS) == ["email", True]
    # Only the address wrong now: it is the one focused.
    page.fill("#text", "Liikuntapaikkojen esteettömyys")
    with page.expect_navigation():
        page.click("button[type=submit]")
    _autofocused(page)
    assert page.evaluate(FOCUS)[0] == "email"
    # The receipt at 320 px: a long address in the quote wraps instead of overflowing.
    page.set_viewport_size({"width": 320, "height": 640})
    page.fill("#email", "hyte@jamsa.example")
    page.fill("#text", "Katso https://www.jamsa.example/" + "liikuntapaikkojen-esteettomyys" * 8)
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert page.locator("#reference").count() == 1
    assert page.evaluate("document.documentElement.scrollWidth") <= 320
    page.close()
