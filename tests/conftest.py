"""Shared fixtures: real databases (SQLite and PostgreSQL), the example config, Prefect.

PostgreSQL tests use HYTETU_TEST_POSTGRES_URL (default: the local server as postgres).
They are skipped when no server answers, unless HYTETU_REQUIRE_POSTGRES=1 (CI), where a
missing server fails the run.
"""

from __future__ import annotations

import email
import os
import re
import shutil
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, select, text

from hytetu import db, phases

ROOT = Path(__file__).resolve().parent.parent
# bench/ is not installed: its generators and hostile-file builders are imported from the checkout.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
EXAMPLE = ROOT / "config" / "examples" / "keski-suomi-2025"
HELSINKI = ZoneInfo("Europe/Helsinki")
PG_ADMIN_URL = os.environ.get(
    "HYTETU_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def helsinki(text_: str) -> datetime:
    """'2025-10-16 07:00' in Helsinki time."""
    return datetime.fromisoformat(text_).replace(tzinfo=HELSINKI)


def edit(folder: Path, file: str, old: str, new: str) -> int:
    """Replace the one occurrence of ``old`` in ``folder/file``; return the line it began on."""
    path = folder / file
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {file}"
    start = text.index(old)
    path.write_text(text.replace(old, new), encoding="utf-8")
    return text.count("\n", 0, start) + 1


def line_of(folder: Path, file: str, needle: str) -> int:
    """The 1-based line of the one occurrence of ``needle`` in ``folder/file`` as it is now."""
    text = (folder / file).read_text(encoding="utf-8")
    assert text.count(needle) == 1, f"{needle!r} occurs {text.count(needle)} times in {file}"
    return text.count("\n", 0, text.index(needle)) + 1


ENCODED_WORD = re.compile(r"=\?([^?\s]*)\?([qQbB])\?([^?\s]*)\?=")


def on_the_wire(raw: bytes) -> EmailMessage:
    """``raw`` read back with the strict policy, after checking what any relay and client
    takes: 7-bit only (no 8BITMIME needed), CRLF lines of at most 998 octets (RFC 5322),
    no 8bit or binary part, and encoded words (RFC 2047) that are not empty and at most
    75 characters."""
    assert raw.isascii(), "8-bit octets on the wire"
    assert b"\n" not in raw.replace(b"\r\n", b""), "a bare LF"
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    head = raw.partition(b"\r\n\r\n")[0].decode()
    for match in ENCODED_WORD.finditer(head):
        assert match.group(3), f"empty encoded word {match.group()}"
        assert len(match.group()) <= 75, f"encoded word longer than 75: {match.group()}"
    msg = email.message_from_bytes(raw, policy=policy.strict)
    assert isinstance(msg, EmailMessage)
    for part in msg.walk():
        if not part.is_multipart():
            cte = part.get("Content-Transfer-Encoding", "7bit").lower()
            assert cte in ("7bit", "quoted-printable", "base64"), cte
    return msg


def copy_sqlite(src: str | Path, dst: Path) -> str:
    """A consistent copy of a SQLite database, its write-ahead log included (a file copy
    of ``hytetu.db`` alone can miss the newest commits); returns the copy's URL."""
    import sqlite3
    from contextlib import closing

    with (
        closing(sqlite3.connect(str(src).removeprefix("sqlite:///"))) as source,
        closing(sqlite3.connect(dst)) as target,
    ):
        source.backup(target)
    return f"sqlite:///{dst}"


def prefect_artifacts(flow_run_ids: list | None = None, key_like: str | None = None) -> list:
    """The artifacts on the test Prefect API of these flow runs, or whose key is ``LIKE``
    ``key_like``."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    wanted = ArtifactFilter(
        flow_run_id=ArtifactFilterFlowRunId(any_=flow_run_ids) if flow_run_ids else None,
        key=ArtifactFilterKey(like_=key_like) if key_like else None,
    )

    async def read() -> list:
        async with get_client() as client:
            return await client.read_artifacts(artifact_filter=wanted)

    return asyncio.run(read())


def add_finding(url: str, session_key: str, text: str, position: int = 999) -> None:
    """Add a finding to a held session's notes (safety × older people), as an edit would."""
    from sqlalchemy import select

    with db.session_scope(url) as s:
        session = s.scalars(select(db.MeetingSession).filter_by(key=session_key)).one()
        s.add(
            db.Finding(
                session_id=session.id,
                kind="cell",
                priority_area_key="arjen-turvallisuus",
                service_area_key="ikaantyneet",
                text=text,
                position=position,
            )
        )


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """A private copy of the example config folder, safe to edit."""
    target = tmp_path / "config"
    shutil.copytree(EXAMPLE, target)
    return target


def _postgres_available() -> bool:
    try:
        engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[str]:
    if not _postgres_available():
        if os.environ.get("HYTETU_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required but does not answer at {PG_ADMIN_URL}")
        pytest.skip("no PostgreSQL server (set HYTETU_TEST_POSTGRES_URL)")
    yield PG_ADMIN_URL


def _new_postgres_db(admin_url: str) -> tuple[str, str]:
    name = f"hytetu_test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return name, admin_url.rsplit("/", 1)[0] + f"/{name}"


def _drop_postgres_db(admin_url: str, name: str, url: str) -> None:
    db.dispose(url)
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'hytetu.db'}"
        yield url
        db.dispose(url)
        return
    admin = request.getfixturevalue("postgres_admin")
    name, url = _new_postgres_db(admin)
    try:
        yield url
    finally:
        _drop_postgres_db(admin, name, url)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    """An empty SQLite database, for tests that are not about the backend."""
    url = f"sqlite:///{tmp_path / 'hytetu.db'}"
    yield url
    db.dispose(url)


@pytest.fixture
def loaded(sqlite_url: str, example: Path) -> str:
    """A SQLite database with the example config loaded; returns its URL."""
    phases.load(example, sqlite_url)
    return sqlite_url


def load_copy(base: Path, config: Path = EXAMPLE) -> str:
    """``config`` copied to ``base/config`` (tests may edit it) and loaded into a new
    ``base/hytetu.db``; returns the database's URL."""
    shutil.copytree(config, base / "config")
    url = f"sqlite:///{base / 'hytetu.db'}"
    phases.load(base / "config", url)
    return url


@pytest.fixture(scope="module")
def loaded_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example loaded once per module (loading runs the migrations: slow); returns the
    database file. Its config folder is shared: read only."""
    base = tmp_path_factory.mktemp("loaded")
    url = load_copy(base)
    db.dispose(url)
    return base / "hytetu.db"


@pytest.fixture
def loaded_copy(loaded_once: Path, tmp_path: Path) -> Iterator[str]:
    """A private copy of ``loaded_once``'s database; returns its URL."""
    url = copy_sqlite(loaded_once, tmp_path / "hytetu.db")
    yield url
    db.dispose(url)


@pytest.fixture(scope="session")
def year_built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example run through the year up to rendered drafts, once per test run: the
    first worker to ask builds it (13 s), the others wait for it. Never changed: ``year``
    gives each module a copy."""
    from filelock import FileLock

    from hytetu.simulate import run_ticks

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, shared by its workers
    base = root / "year-built"
    with FileLock(root / "year-built.lock"):
        if not (base / "built").exists():
            shutil.rmtree(base, ignore_errors=True)
            base.mkdir()
            url = load_copy(base)
            run_ticks(url, base / "out")
            db.dispose(url)
            (base / "built").touch()
    return base


@pytest.fixture(scope="module")
def year(year_built: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The example run through the year up to rendered drafts (shared in a module, read
    only): a copy of ``year_built``'s database, config and output, its cycle pointing at
    the copied config."""
    base = tmp_path_factory.mktemp("year")
    shutil.copytree(year_built / "config", base / "config")
    shutil.copytree(year_built / "out", base / "out")
    url = copy_sqlite(year_built / "hytetu.db", base / "hytetu.db")
    with db.session_scope(url) as s:
        for cycle in s.scalars(select(db.Cycle)):
            cycle.config_folder = str((base / "config").resolve())
    yield url, base
    db.dispose(url)


@pytest.fixture
def own_year(year: tuple[str, Path], tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A private copy of the simulated year, for tests that change it."""
    _, base = year
    copy_sqlite(base / "hytetu.db", tmp_path / "hytetu.db")
    url = f"sqlite:///{tmp_path / 'hytetu.db'}"
    yield url, tmp_path
    db.dispose(url)


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    """One real Prefect API (a temporary server) for the whole session, lean as the
    demo's (no task runs or events recorded: see ``flows.demo.LEAN_SERVER_ENV``)."""
    with prefect_harness(lean=True):
        yield


@contextmanager
def prefect_harness(*, lean: bool) -> Iterator[None]:
    """Prefect's test harness (a real API server in a subprocess); ``lean`` starts it with
    the demo's lean settings, else with every service a production server runs."""
    from prefect.testing.utilities import prefect_test_harness

    from flows.demo import LEAN_SERVER_ENV

    with ExitStack() as stack:
        with pytest.MonkeyPatch.context() as env:  # the server process reads them at start
            for name, value in LEAN_SERVER_ENV.items():
                if lean:
                    env.setenv(name, value)
                else:
                    env.delenv(name, raising=False)
            stack.enter_context(prefect_test_harness(server_startup_timeout=120))
        yield


@contextmanager
def running(app: Any, **settings: Any) -> Iterator[str]:
    """The app served by a real uvicorn on loopback, with hytetu's own server settings
    (``settings``: more of ``server_config``'s, e.g. short timeouts), in a thread; yields
    its base URL."""
    import uvicorn

    from hytetu.web.security import server_config

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = server_config(app, "127.0.0.1", port, log_level="warning", **settings)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
