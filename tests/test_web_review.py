"""The coordinator's review page (hytetu.web.review): login, session cookie, CSRF, rate
limits and headers through Starlette's TestClient; every action stored with the name and
compiled again; and a real browser (Debian's chromium through Playwright) that merges,
moves and rewords, after which the rendered memos (HTML and PDF) show it."""

from __future__ import annotations

import copy
import html
import io
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import copy_sqlite, running
from sqlalchemy import select
from sqlalchemy.orm.attributes import flag_modified
from test_findings_corrections import GRIT, LAMP, LAMP_TOO, SCOOTER, YARD, prepare
from test_webform import browser as browser  # a fixture
from typer.testing import CliRunner

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from hytetu import db, findings, phases
from hytetu.errors import StateError
from hytetu.state import cycle_view
from hytetu.web import review
from hytetu.web.review import Sessions, anchor, create_app

PASSWORD = "oikea-salasana-2025"
SECRET = b"review-test-secret"


@pytest.fixture(scope="module")
def compiled_once(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    base = tmp_path_factory.mktemp("review")
    info = prepare(base)
    url = f"sqlite:///{base / 'hytetu.db'}"
    phases.run_compile(url)
    db.dispose(url)
    return base / "hytetu.db", info


@pytest.fixture
def case(compiled_once, tmp_path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    url = copy_sqlite(compiled_once[0], tmp_path / "hytetu.db")
    yield url, compiled_once[1]
    db.dispose(url)


def app(url: str, **kw: Any) -> Any:
    return create_app(url, password=PASSWORD, secret=SECRET, **kw)


def token(page: str) -> str:
    match = re.search(r'name="token" value="([^"]+)"', page)
    assert match, page[:2000]
    return match.group(1)


def log_in(client: TestClient, name: str = "Kaija Koordinaattori", lang: str = "fi") -> str:
    """Log in; returns the overview page."""
    tok = token(client.get(f"/login?lang={lang}").text)
    page = client.post(
        "/login", data={"token": tok, "name": name, "password": PASSWORD, "lang": lang}
    )
    assert page.status_code == 200 and "Kirjaudu" in page.text or lang == "sv", page.text
    return page.text


def area_of(cell: str) -> str:
    return "/area/" + cell.split("/")[0]


def stored(url: str) -> list[db.FindingCorrection]:
    with db.session_scope(url) as s:
        rows = list(s.scalars(select(db.FindingCorrection).order_by(db.FindingCorrection.id)))
        s.expunge_all()
        return rows


def latest(url: str) -> dict[str, Any]:
    with db.session_scope(url) as s:
        return findings.latest_compilation(cycle_view(s)).result


def suggest(url: str, cell: str, a: str, b: str) -> None:
    """Put a suggestion of (a, b) in the newest compilation unless it has one (the compile's
    own suggestions come with the new similarity measure)."""
    with db.session_scope(url) as s:
        row = findings.latest_compilation(cycle_view(s))
        result = copy.deepcopy(row.result)
        c = next(x for x in result["cells"] if f"{x['priority_area']}/{x['service_area']}" == cell)
        groups = {m["text"]: t["groups"] for t in c["themes"] for m in t["members"]}
        pairs = {frozenset((x["a"], x["b"])) for x in c.get("suggestions", [])}
        if frozenset((a, b)) not in pairs:
            c.setdefault("suggestions", []).append(
                {"a": a, "b": b, "groups_a": groups[a], "groups_b": groups[b], "score": 0.41}
            )
        row.result = result
        flag_modified(row, "result")


# --- login, session, CSRF ---------------------------------------------------------------


def test_every_page_needs_a_login(case) -> None:
    url, info = case
    client = TestClient(app(url))
    for path in ("/", "/?lang=sv", area_of(info["cell"])):
        page = client.get(path, follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"].startswith("/login")
    assert client.get("/", follow_redirects=False).headers["location"] == "/login?lang=fi"
    refused = client.post("/action", data={"kind": "rename", "cell": info["cell"]})
    assert refused.status_code == 403 and "Istuntosi on päättynyt" in refused.text
    assert stored(url) == []


def test_login_with_the_password_sets_a_strict_session_cookie(case) -> None:
    url, _ = case
    client = TestClient(app(url))
    assert client.head("/login").status_code == 200
    page = client.get("/login")
    assert '<html lang="fi">' in page.text and 'for="password"' in page.text
    assert 'for="name"' in page.text and "Nimesi" in page.text
    answer = client.post(
        "/login",
        data={"token": token(page.text), "name": "Kaija", "password": PASSWORD, "lang": "fi"},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/?lang=fi"
    cookie = next(
        c for c in answer.headers.get_list("set-cookie") if c.startswith("hytetu_review=")
    )
    low = cookie.lower()
    assert "httponly" in low and "samesite=strict" in low and "max-age=28800" in low
    assert "secure" not in low  # plain http on loopback; https sets Secure
    overview = client.get("/")
    assert overview.status_code == 200 and "Kaija" in overview.text
    assert PASSWORD not in overview.text and SECRET.decode() not in overview.text


def test_https_sets_secure_cookies(case) -> None:
    url, _ = case
    client = TestClient(app(url), base_url="https://review.example")
    page = client.get("/login")
    assert "secure" in page.headers["set-cookie"].lower()
    answer = client.post(
        "/login",
        data={"token": token(page.text), "name": "Kaija", "password": PASSWORD},
        follow_redirects=False,
    )
    assert all("secure" in c.lower() for c in answer.headers.get_list("set-cookie"))
    assert page.headers["strict-transport-security"]


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"password": "väärä-salasana"}, 403, "Salasana ei kelpaa."),
        ({"password": ""}, 403, "Salasana ei kelpaa."),
        ({"name": "   "}, 400, "Kirjoita nimesi"),
        ({"name": "x" * 101}, 400, "Kirjoita nimesi"),
        ({"token": "forged.1.abc"}, 403, "Lomakkeen tarkiste ei kelpaa"),
    ],
)
def test_a_failed_login_gives_no_session(case, change: dict, status: int, message: str) -> None:
    url, _ = case
    client = TestClient(app(url))
    data = {"name": "Kaija", "password": PASSWORD, "lang": "fi"}
    data["token"] = token(client.get("/login").text)
    page = client.post("/login", data=data | change, follow_redirects=False)
    assert page.status_code == status and message in page.text
    assert "hytetu_review=" not in page.headers.get("set-cookie", "")
    assert PASSWORD not in page.text
    assert client.get("/", follow_redirects=False).status_code == 303


def test_login_attempts_are_limited(case) -> None:
    url, _ = case
    client = TestClient(app(url, login_attempts=3))
    tok = token(client.get("/login").text)
    for _ in range(3):
        wrong = client.post("/login", data={"token": tok, "name": "X", "password": "arvaus123"})
        assert wrong.status_code == 403
    refused = client.post("/login", data={"token": tok, "name": "X", "password": PASSWORD})
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
    assert "Liian monta" in refused.text


def test_a_change_needs_the_token_of_this_browser(case) -> None:
    url, info = case
    client = TestClient(app(url))
    log_in(client)
    form = {"kind": "rename", "cell": info["cell"], "text": LAMP, "wording": "Uusi", "lang": "fi"}
    forged = client.post("/action", data=form | {"token": "forged.1.abc"})
    assert forged.status_code == 403 and "Sivun tarkiste ei kelpaa" in forged.text
    other = TestClient(client.app)
    other_token = token(other.get("/login").text)
    stolen = client.post("/action", data=form | {"token": other_token})
    assert stolen.status_code == 403
    assert stored(url) == []


def test_a_session_expires_ends_at_logout_and_cannot_be_forged() -> None:
    sessions = Sessions(b"k", max_age=60)
    cookie = sessions.new("Kaija Koordinaattori")
    login = sessions.check(cookie)
    assert login is not None and login.name == "Kaija Koordinaattori"
    sid, issued, name, sig = cookie.split(".")
    assert sessions.check(f"{sid}.{issued}.{name}.{'0' * len(sig)}") is None
    other = Sessions(b"k", max_age=60).new("Mallory").split(".")
    assert sessions.check(".".join([sid, issued, other[2], sig])) is None
    assert sessions.check(f"{sid}.{int(issued) - 61}.{name}.{sig}") is None
    assert Sessions(b"other").check(cookie) is None
    sessions.end(login)
    assert sessions.check(cookie) is None


def test_logout(case) -> None:
    url, _ = case
    client = TestClient(app(url))
    page = log_in(client)
    kept = client.cookies.get("hytetu_review")
    out = client.post("/logout", data={"token": token(page), "lang": "fi"}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login?lang=fi"
    client.cookies.set("hytetu_review", kept)  # an old copy of the cookie is worthless
    assert client.get("/", follow_redirects=False).status_code == 303


def test_security_headers_and_no_scripts(case) -> None:
    url, info = case
    client = TestClient(app(url))
    log_in(client)
    for path in ("/login", "/", area_of(info["cell"]), "/review.css", "/nowhere"):
        page = client.get(path)
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src" not in csp
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["cache-control"] == "no-store"
        assert "<script" not in page.text
    assert client.get("/area/nowhere").status_code == 404


# --- the page and its actions ---------------------------------------------------------------


def test_the_page_shows_themes_findings_groups_and_suggestions(case) -> None:
    url, info = case
    suggest(url, info["cell"], YARD, GRIT)
    client = TestClient(app(url))
    overview = log_in(client)
    assert "Arjen turvallisuuden edistäminen" in overview
    assert "Muutokset tarkistuksen aikana" in overview and "Kaikki tehdyt muutokset" in overview
    page = client.get(area_of(info["cell"])).text
    assert f'id="{anchor(info["cell"])}"' in page
    for text in (LAMP, YARD, GRIT, SCOOTER):
        assert html.escape(text) in page
    assert "Jämsä, Keuruu, Multia ja Petäjävesi" in page  # the first group by its name
    assert "Yhdistä" in page and "Pidä erillään" in page
    assert re.search(r"Samankaltaisuus \d+ %", page)
    assert "Yhteinen" in page and "kuntaryhmää" in page
    assert page.count('name="kind" value="move"') >= 5 and "Siirrä" in page
    assert 'name="wording"' in page and "Merkitse yhteiseksi" in page


def post(client: TestClient, page: str, **form: str) -> Any:
    return client.post(
        "/action", data={"token": token(page), "lang": "fi"} | form, follow_redirects=False
    )


def test_each_action_is_stored_with_the_name_and_compiled(case) -> None:
    url, info = case
    cell, other = info["cell"], info["other"]
    client = TestClient(app(url))
    page = log_in(client, "Kaija Koordinaattori")
    answer = post(client, page, kind="merge", cell=cell, a=YARD, b=GRIT)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith(area_of(cell) + "?")
    assert answer.headers["location"].endswith("#" + anchor(cell))
    shown = client.get(answer.headers["location"]).text
    assert "Nostot yhdistettiin samaksi teemaksi" in shown
    post(client, page, kind="keep_apart", cell=cell, a=LAMP, b=LAMP_TOO)
    moved = post(client, page, kind="move", cell=cell, text=SCOOTER, to=other, group="")
    assert moved.headers["location"].endswith("#" + anchor(other))
    post(client, page, kind="rename", cell=cell, text=YARD, wording="Talvikunnossapito pihoilla")
    post(client, page, kind="common", cell=cell, text=LAMP, common="1")  # alone, since kept apart
    rows = stored(url)
    assert [r.kind for r in rows] == ["merge", "keep_apart", "move", "rename", "common"]
    assert {r.actor for r in rows} == {"Kaija Koordinaattori"}
    assert all(r.created_at is not None for r in rows)
    result = latest(url)
    assert all(c["applied"] for c in result["corrections"])
    cells = {f"{c['priority_area']}/{c['service_area']}": c for c in result["cells"]}
    yard = findings._theme_of(cells[cell]["themes"], YARD)
    assert yard["text"] == "Talvikunnossapito pihoilla" and GRIT in str(yard["members"])
    assert findings._theme_of(cells[other]["themes"], SCOOTER) is not None
    lamp = findings._theme_of(cells[cell]["themes"], LAMP)
    assert lamp["common"] and len(lamp["groups"]) == 1
    overview = client.get("/").text
    assert "Talvikunnossapito pihoilla" in overview  # in the changes and the corrections
    assert overview.count("Kaija Koordinaattori") >= 5
    # The changes are those of the newest compilation against the one before: the last
    # action's.
    assert "merkittiin yhteiseksi:" in overview and "voimassa" in overview


@pytest.mark.parametrize(
    ("wording", "message"),
    [
        ("", "sanamuoto ei voi olla tyhjä"),
        ("x" * 501, "sanamuoto on liian pitkä"),
        ("kaksi\nriviä", "rivinvaihto"),
    ],
)
def test_a_bad_wording_is_explained_and_nothing_stored(case, wording: str, message: str) -> None:
    url, info = case
    client = TestClient(app(url))
    page = log_in(client)
    answer = post(client, page, kind="rename", cell=info["cell"], text=LAMP, wording=wording)
    assert "error=" in answer.headers["location"]
    assert message in client.get(answer.headers["location"]).text
    assert stored(url) == []


def test_a_stale_or_unknown_change_is_refused(case) -> None:
    url, info = case
    client = TestClient(app(url))
    page = log_in(client)
    gone = post(client, page, kind="merge", cell=info["cell"], a=YARD, b="Ei tällaista nostoa")
    assert "nostoa ei enää löydy" in client.get(gone.headers["location"]).text
    # Only exact texts: a part of a finding's text (the command line accepts one) is not
    # taken for the whole when it comes from the page.
    partial = post(client, page, kind="merge", cell=info["cell"], a=YARD[:12], b=GRIT)
    assert "error=stale" in partial.headers["location"]
    bad = post(client, page, kind="split", cell=info["cell"], text=YARD)
    assert "error=bad" in bad.headers["location"]
    nowhere = post(client, page, kind="merge", cell="../../etc", a=YARD, b=GRIT)
    assert nowhere.headers["location"].startswith("/?")
    assert stored(url) == []


def test_swedish_pages(case) -> None:
    url, info = case
    client = TestClient(app(url))
    login = client.get("/login?lang=sv").text
    assert '<html lang="sv">' in login and "Lösenord" in login and "Ditt namn" in login
    log_in(client, lang="sv")
    page = client.get("/?lang=sv").text
    assert '<html lang="sv">' in page and "Granskning av sammandraget" in page
    assert "Ändringar under granskningen" in page
    assert 'href="/?lang=fi" lang="fi"' in page
    area = client.get(area_of(info["cell"]) + "?lang=sv").text
    assert "Spara formuleringen" in area and "Markera som gemensamt" in area
    # The findings themselves are Finnish, and marked so on the Swedish page.
    assert f'lang="fi">{html.escape(YARD)}</span>' in area


# --- starting it ------------------------------------------------------------------------------


def test_the_password_comes_from_the_environment_or_a_secret_block(monkeypatch) -> None:
    monkeypatch.delenv(review.PASSWORD_ENV, raising=False)
    monkeypatch.delenv(review.PASSWORD_BLOCK_ENV, raising=False)
    with pytest.raises(StateError, match="needs a password: set HYTETU_REVIEW_PASSWORD"):
        review.review_password()
    monkeypatch.setenv(review.PASSWORD_ENV, "lyhyt")
    with pytest.raises(StateError, match="shorter than 8"):
        review.review_password()
    monkeypatch.setenv(review.PASSWORD_ENV, PASSWORD)
    assert review.review_password() == PASSWORD

    from prefect.blocks.system import Secret

    class Block:
        def get(self) -> str:
            return "lohkon-salasana"

    loaded: list[str] = []
    monkeypatch.delenv(review.PASSWORD_ENV)
    monkeypatch.setenv(review.PASSWORD_BLOCK_ENV, "hytetu-review")
    monkeypatch.setattr(
        Secret, "load", classmethod(lambda cls, name: loaded.append(name) or Block())
    )
    assert review.review_password() == "lohkon-salasana" and loaded == ["hytetu-review"]

    def missing(cls, name):
        raise ValueError(f"no block {name}")

    monkeypatch.setattr(Secret, "load", classmethod(missing))
    with pytest.raises(StateError, match="Prefect Secret block hytetu-review: ValueError"):
        review.review_password()


def test_serve_review_refuses_to_start_without_a_password(monkeypatch, case) -> None:
    from hytetu.cli import app as cli

    url, _ = case
    monkeypatch.setenv("HYTETU_DATABASE_URL", url)
    monkeypatch.delenv(review.PASSWORD_ENV, raising=False)
    monkeypatch.delenv(review.PASSWORD_BLOCK_ENV, raising=False)
    result = CliRunner().invoke(cli, ["serve-review"])
    assert result.exit_code == 1 and "needs a password" in result.output
    calls: list[dict] = []
    monkeypatch.setattr(review, "serve", lambda **kw: calls.append(kw))
    ok = CliRunner().invoke(cli, ["serve-review", "--port", "8123", "--region", "keski-suomi"])
    assert ok.exit_code == 0, ok.output
    assert calls == [
        {"host": "127.0.0.1", "port": 8123, "trusted_proxies": [], "region": "keski-suomi"}
    ]


# --- a real browser --------------------------------------------------------------------------

NEW_WORDING = "Pihojen talvikunnossapito ja liukastumisten ehkäisy"


@pytest.fixture
def served(case) -> Iterator[tuple[str, str, dict[str, Any]]]:
    url, info = case
    with running(app(url)) as base:
        yield base, url, info


def _section(text: str, start: str, stop: str) -> str:
    """The part of ``text`` from ``start`` up to the next ``stop`` (or the end)."""
    i = text.index(start)
    j = text.find(stop, i + len(start))
    return text[i : j if j >= 0 else None]


def _pdf_text(pdf: bytes) -> str:
    from pypdf import PdfReader

    raw = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
    return re.sub(r"\s+", " ", re.sub(r"-\n", "-", raw))


def test_browser_merge_move_reword_then_the_memos_show_it(
    browser, served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, url, info = served
    cell, other = info["cell"], info["other"]
    first, second = info["groups"][:2]
    suggest(url, cell, YARD, GRIT)
    # HYTETU_REVIEW_SCREENSHOTS=docs/images saves the README's screenshots (full pages;
    # the cell as an element); without it none are taken (they cost seconds).
    folder = os.environ.get("HYTETU_REVIEW_SCREENSHOTS")
    shots = Path(folder) if folder else None

    def shoot(target: Any, name: str, **kw: Any) -> None:
        if shots is not None:
            shots.mkdir(parents=True, exist_ok=True)
            target.screenshot(path=str(shots / name), **kw)

    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto(base + "/")
    assert page.url.startswith(base + "/login")
    page.fill("#name", "Kaija Koordinaattori")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("text=Muutokset tarkistuksen aikana")

    # Accept the suggestion: one click.
    page.goto(base + area_of(cell))  # not scrolled: the box is in page coordinates
    section = page.locator(f"#{anchor(cell)}")
    box = section.bounding_box()
    assert box is not None
    top = {
        "x": box["x"] - 16,
        "y": box["y"] - 16,
        "width": box["width"] + 32,
        "height": min(box["height"], 1400) + 16,
    }
    shoot(page, "review-cell-suggestion-fi.png", full_page=True, clip=top)
    pair = section.locator(".suggestion", has_text=YARD).filter(has_text=GRIT)
    pair.get_by_role("button", name="Yhdistä").click()
    page.wait_for_selector("text=Nostot yhdistettiin samaksi teemaksi")
    assert page.url.endswith("#" + anchor(cell))

    # Move a finding to the next cell.
    theme = page.locator(f"#{anchor(cell)} article.theme", has_text=SCOOTER)
    theme.locator("summary").click()
    form = theme.locator("details form", has_text=SCOOTER[:20])
    form.locator("select").select_option(other)
    form.get_by_role("button", name="Siirrä").click()
    page.wait_for_selector("text=Nosto siirrettiin tähän kohtaan")
    assert page.locator(f"#{anchor(other)}").get_by_text(SCOOTER).count() >= 1

    # Word the merged theme as it should read in the memos (the same page: both cells are
    # in the first priority area).
    merged = page.locator(f"#{anchor(cell)} article.theme", has_text=GRIT)
    merged.locator('input[name="wording"]').fill(NEW_WORDING)
    merged.get_by_role("button", name="Tallenna sanamuoto").click()
    page.wait_for_selector("text=Sanamuoto tallennettiin")
    assert page.locator(f"#{anchor(cell)} h4", has_text=NEW_WORDING).count() == 1

    page.goto(base + "/")
    assert NEW_WORDING in page.content()  # among the changes and the corrections
    shoot(page, "review-overview-fi.png", full_page=True)

    # The Swedish page.
    page.goto(base + "/?lang=sv")
    page.wait_for_selector("text=Ändringar under granskningen")
    assert page.locator("html").get_attribute("lang") == "sv"
    assert "Kaija Koordinaattori" in page.content() and NEW_WORDING in page.content()
    shoot(page, "review-overview-sv.png", full_page=True)

    # The memos rendered from the reviewed compilation.
    monkeypatch.setenv("HYTETU_RENDER_WORKERS", "2")  # the seven documents, in parallel
    phases.run_render(tmp_path / "out", url)
    with db.session_scope(url) as s:
        view = cycle_view(s)
        pas, sas, _ = view.matrix()
        names = {p.key: view.text(p.name) for p in pas} | {a.key: view.text(a.name) for a in sas}
        versions = {
            v.memo.key: (v.html, v.pdf)
            for v in s.scalars(select(db.MemoVersion).order_by(db.MemoVersion.id))
        }
    html_first, pdf_first = versions[f"memo-{first}"]
    html_second, pdf_second = versions[f"memo-{second}"]
    pa, sa = other.split("/")
    # The moved finding is in the second group's memo under the cell it was moved to.
    discussion = html_second[html_second.index("<h3>" + html.escape(names[pa])) :]
    target = _section(discussion, f"<h4>{html.escape(names[sa])}</h4>", "<h4>")
    assert html.escape(SCOOTER) in target
    assert SCOOTER in _pdf_text(pdf_second)
    # The new wording is in the memos of both groups of the merged theme and the summary.
    assert html.escape(NEW_WORDING) in html_first and YARD not in html_first
    assert NEW_WORDING in _pdf_text(pdf_first)
    third = info["groups"][2]
    assert html.escape(NEW_WORDING) in versions[f"memo-{third}"][0]
    summary_html, summary_pdf = versions["summary"]
    assert html.escape(NEW_WORDING) in summary_html
    assert NEW_WORDING in _pdf_text(summary_pdf)


def test_the_compilation_artifact_links_to_the_page(monkeypatch) -> None:
    from tasks.reporting import review_link

    monkeypatch.delenv("HYTETU_REVIEW_URL", raising=False)
    assert "[http://127.0.0.1:8001/](http://127.0.0.1:8001/)" in review_link()
    monkeypatch.setenv("HYTETU_REVIEW_URL", "https://hyte.example/{region}/koonti")
    assert "(https://hyte.example/keski-suomi/koonti/)" in review_link("keski-suomi")


@pytest.mark.prefect
def test_the_compile_flow_artifact_has_the_link(
    prefect_api: None, case, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import prefect_artifacts

    from flows.compile import compile_findings

    url, _ = case
    monkeypatch.setenv("HYTETU_DATABASE_URL", url)
    monkeypatch.setenv("HYTETU_REVIEW_URL", "http://127.0.0.1:8123/")
    state = compile_findings(return_state=True)
    assert state.is_completed()
    artifacts = {a.key: a for a in prefect_artifacts([state.state_details.flow_run_id])}
    assert (
        "[http://127.0.0.1:8123/](http://127.0.0.1:8123/)" in artifacts["hytetu-compilation"].data
    )


# --- the memos, opened from the approval artifacts ---------------------------------------


def test_memo_documents_open_behind_the_login_and_only_this_cycles(own_year) -> None:
    from hytetu import reports
    from hytetu.memos import drafts

    url, _ = own_year
    with db.session_scope(url) as s:
        version = drafts(cycle_view(s))[0]
        vid, name, pdf, page_html = version.id, version.filename, version.pdf, version.html
    link = reports.document_url(vid, name).removeprefix(reports.review_url())
    client = TestClient(app(url))

    # Not logged in: to the login, which comes back to the document afterwards.
    first = client.get("/" + link, follow_redirects=False)
    assert first.status_code == 303
    assert (
        first.headers["location"].startswith("/login?")
        and "next=%2Fdocuments%2F" in (first.headers["location"])
    )
    login_page = client.get(first.headers["location"]).text
    assert f'name="next" value="/documents/{vid}/' in login_page
    after = client.post(
        "/login",
        data={
            "token": token(login_page),
            "name": "Kaija Koordinaattori",
            "password": PASSWORD,
            "lang": "fi",
            "next": f"/documents/{vid}/{name}",
        },
    )
    assert after.status_code == 200 and after.content == pdf
    assert after.headers["content-type"] == "application/pdf"
    assert f"filename*=UTF-8''{name}" in after.headers["content-disposition"]

    html_page = client.get(f"/documents/{vid}/{name.removesuffix('.pdf')}.html")
    assert html_page.text == page_html and html_page.headers["content-type"].startswith("text/html")
    # Its own inline styles may apply; nothing else may load or run.
    csp = html_page.headers["content-security-policy"]
    assert "style-src 'unsafe-inline'" in csp and "script-src" not in csp
    assert "default-src 'none'" in csp

    # Another file name, another id, or a way out of the page: nothing.
    assert client.get(f"/documents/{vid}/other.pdf").status_code == 404
    assert client.get(f"/documents/{vid + 1000}/{name}").status_code == 404
    outside = client.get("/login?next=//evil.example/x", follow_redirects=False)
    assert outside.headers["location"].startswith("/?")


def test_the_coordinator_opens_a_memo_from_its_link_in_chromium(browser, own_year) -> None:
    from hytetu import reports
    from hytetu.memos import drafts

    url, _ = own_year
    with db.session_scope(url) as s:
        version = next(v for v in drafts(cycle_view(s)) if "jamsa" in v.filename)
        vid, name = version.id, version.filename
    with running(app(url)) as base:
        page = browser.new_page()
        link = reports.document_url(vid, name.removesuffix(".pdf") + ".html")
        page.goto(base + "/" + link.removeprefix(reports.review_url()))
        page.fill("#name", "Kaija Koordinaattori")
        page.fill("#password", PASSWORD)
        page.get_by_role("button", name="Kirjaudu").click()
        page.wait_for_url(f"**/documents/{vid}/**")
        assert page.get_by_role("heading", level=1).inner_text().startswith("Muistio: Jämsä")
        page.screenshot(path=str(SHOTS / "memo-opened-from-artifact.png"), full_page=False)
        page.close()


SHOTS = Path(os.environ.get("HYTETU_SCREENSHOTS", "/tmp/hytetu-screenshots"))
SHOTS.mkdir(parents=True, exist_ok=True)
