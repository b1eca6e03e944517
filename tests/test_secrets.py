"""Secrets never leave the environment: not into files, the database, logs, Prefect or errors.

The whole simulated year runs through the real Prefect flows (as ``hytetu demo`` does) with
a fake, unique value in every environment variable the product reads a secret from, and the
transport set to SMTP: a real aiosmtpd server on loopback that requires AUTH with that
password, so the secret is really used. Then every place an operator, a backup or the
Prefect UI could see is searched for the secret, in plain text and in the encodings it
travels in (base64 as in AUTH PLAIN/LOGIN, at every alignment, hex, URL quoting): each file
under the config and output folders, a dump of every table of the database, the captured
stdout/stderr and Python logging, and every Prefect log, artifact, flow and task run read
back from the API.

A second test makes authentication fail against a server that quotes the credentials back
in its refusal (a hostile or over-verbose server): the secret stays out of the error texts,
the database and Prefect all the same.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import pickle
import shutil
import socket
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword
from conftest import EXAMPLE, helsinki, prefect_harness
from sqlalchemy import create_engine, inspect, select, text

from hytetu import db

pytestmark = [
    pytest.mark.prefect,
    # AUTH without TLS is what these tests do on purpose, on loopback
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS"),
]


@pytest.fixture(scope="module")
def prefect_api() -> Iterator[None]:
    """An API with every service a production server runs, so that the task runs it
    records are searched for secrets too (the suite's shared API is lean)."""
    with prefect_harness(lean=False):
        yield


USER = "hyte"
# Every environment variable the product reads a secret from (README: Mail transports;
# the web form's signing key), with the defaults the settings models name.
SECRET_ENVS = (
    "HYTETU_SMTP_PASSWORD",
    "HYTETU_EWS_PASSWORD",
    "HYTETU_EWS_CLIENT_SECRET",
    "HYTETU_GRAPH_CLIENT_SECRET",
    "HYTETU_FORM_SECRET",
)


def fake_secret(kind: str) -> str:
    """Unique per run; an ä and an ö so the UTF-8 AUTH path of hytetu.mail is the one used."""
    return f"{kind}-{uuid.uuid4().hex}-Sal@sana-äö"


# --- finding a secret in any form ---------------------------------------------------------


def _b64_inner(data: bytes, alphabet: Any) -> list[bytes]:
    """What any base64 text containing ``data`` must contain, whatever its offset: for
    each of the 3 alignments, the characters that depend on ``data`` alone."""
    forms = []
    for shift in range(3):
        encoded = alphabet(b"\0" * shift + data + b"\0\0").rstrip(b"=")
        start = (shift * 4 + 2) // 3  # characters touched by the padding before
        end = ((shift + len(data)) * 4) // 3  # characters wholly inside data
        forms.append(encoded[start:end])
    return forms


def needles(secret: str) -> dict[str, bytes]:
    """The secret as it could show up: raw, its unique core (survives repr, \\x and \\u
    escapes, URL and quoted-printable encoding), URL-quoted, hex, and base64 (AUTH PLAIN
    and LOGIN carry it so; MIME bodies too) at every alignment."""
    raw = secret.encode()
    core = secret.split("-")[1].encode()
    found = {
        "plain": raw,
        "core": core,
        "latin-1": secret.encode("latin-1"),
        "url-quoted": quote(secret, safe="").encode(),
        "hex": raw.hex().encode(),
    }
    for name, alphabet in (("base64", base64.b64encode), ("base64url", base64.urlsafe_b64encode)):
        for i, form in enumerate(_b64_inner(raw, alphabet)):
            found[f"{name}@{i}"] = form
    return found


def leaks(secret: str, haystack: dict[str, bytes]) -> list[str]:
    forms = needles(secret)
    return [
        f"{where}: {form}"
        for where, data in haystack.items()
        for form, needle in forms.items()
        if needle in data
    ]


def test_the_needles_find_the_secret_in_an_auth_exchange() -> None:
    """The search itself: it must see the secret inside the base64 AUTH lines."""
    secret = fake_secret("check")
    for line in (
        b"AUTH PLAIN " + base64.b64encode(f"\0{USER}\0{secret}".encode()),
        b"AUTH PLAIN " + base64.b64encode(f"x\0{USER}\0{secret}".encode()),
        base64.b64encode(secret.encode()),  # LOGIN's second line
        repr(secret.encode()).encode(),
        quote(secret).encode(),
    ):
        assert leaks(secret, {"line": line}), line
    assert not leaks(secret, {"other": base64.b64encode(fake_secret("check").encode())})


# --- what an operator could see -----------------------------------------------------------


class Collector(logging.Handler):
    """Every Python log record, with its formatted traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("mail.log"):  # aiosmtpd: the test's server, not hytetu
            return
        self.lines.append(self.format(record))


@pytest.fixture
def python_logs() -> Iterator[Collector]:
    """Attached to the root and to every logger that does not propagate (Prefect's);
    hytetu's own loggers and the flow and task run loggers at DEBUG."""
    collector = Collector()
    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.root.manager.loggerDict.values()
        if isinstance(logger, logging.Logger) and not logger.propagate
    ]
    for logger in loggers:
        logger.addHandler(collector)
    levels = {}
    for name in ("hytetu", "flows", "tasks", "prefect.flow_runs", "prefect.task_runs"):
        levels[name] = logging.getLogger(name).level
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield collector
    for logger in loggers:
        logger.removeHandler(collector)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def files_under(*folders: Path) -> dict[str, bytes]:
    return {
        str(path): path.read_bytes()
        for folder in folders
        if folder.exists()
        for path in folder.rglob("*")
        if path.is_file()
    }


def database_dump(url: str) -> dict[str, bytes]:
    """Every row of every table, bytes columns as they are and everything else as text."""
    engine = create_engine(url)
    dump: dict[str, bytes] = {}
    try:
        with engine.connect() as conn:
            for table in inspect(conn).get_table_names():
                parts: list[bytes] = []
                for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                    for value in row:
                        parts.append(value if isinstance(value, bytes) else str(value).encode())
                dump[f"table {table}"] = b"\n".join(parts)
    finally:
        engine.dispose()
    return dump


def prefect_records() -> dict[str, bytes]:
    """Every log, artifact, flow run (parameters, state) and task run the API holds."""
    from prefect.client.orchestration import get_client

    async def read() -> dict[str, bytes]:
        found: dict[str, list[str]] = {"logs": [], "artifacts": [], "flow runs": []}
        found["task runs"] = []
        async with get_client() as client:
            for offset in range(0, 1_000_000, 200):
                logs = await client.read_logs(limit=200, offset=offset)
                found["logs"] += [f"{log.name} {log.message}" for log in logs]
                if len(logs) < 200:
                    break
            for offset in range(0, 1_000_000, 200):
                artifacts = await client.read_artifacts(limit=200, offset=offset)
                found["artifacts"] += [a.model_dump_json() for a in artifacts]
                if len(artifacts) < 200:
                    break
            for offset in range(0, 1_000_000, 200):
                runs = await client.read_flow_runs(limit=200, offset=offset)
                found["flow runs"] += [r.model_dump_json() for r in runs]
                if len(runs) < 200:
                    break
            for offset in range(0, 1_000_000, 200):
                tasks = await client.read_task_runs(limit=200, offset=offset)
                found["task runs"] += [t.model_dump_json() for t in tasks]
                if len(tasks) < 200:
                    break
        return {f"prefect {k}": "\n".join(v).encode() for k, v in found.items()}

    records = asyncio.run(read())
    from prefect.settings import PREFECT_HOME, PREFECT_LOCAL_STORAGE_PATH

    for folder in {Path(PREFECT_LOCAL_STORAGE_PATH.value()), Path(PREFECT_HOME.value())}:
        for path, data in files_under(folder).items():
            if path.endswith((".db", ".db-wal", ".db-shm")):  # the harness's own API database
                continue
            records[f"prefect file {path}"] = data
    return records


# --- the SMTP server ----------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.delivered: list[Envelope] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
        self.delivered.append(envelope)
        return "250 2.0.0 OK"


class Authenticator:
    """Accepts ``USER`` with ``expected``. A refusal quotes back what it was sent (the
    password, and the AUTH PLAIN blob), as a hostile or over-verbose server might."""

    def __init__(self, expected: str) -> None:
        self.expected = expected
        self.logins: list[str] = []

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        login, password = data.login.decode(), data.password.decode()
        self.logins.append(f"{mechanism} {login}")
        if (login, password) == (USER, self.expected):
            return AuthResult(success=True)
        blob = base64.b64encode(b"\0" + data.login + b"\0" + data.password).decode()
        return AuthResult(
            success=False,
            handled=False,
            message=f"535 5.7.8 {login}/{password} refused (you sent {blob})",
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, Recorder, Authenticator]]:
    expected = fake_secret("smtp")
    recorder, authenticator = Recorder(), Authenticator(expected)
    port = _free_port()
    controller = Controller(
        recorder,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator,
        auth_required=True,
        auth_require_tls=False,
        enable_SMTPUTF8=True,  # so the refusal quotes the password byte for byte
    )
    controller.start()
    yield port, recorder, authenticator
    controller.stop()


# --- the region, configured for SMTP ------------------------------------------------------


def smtp_config(folder: Path, port: int) -> Path:
    shutil.copytree(EXAMPLE, folder)
    with (folder / "region.yaml").open("a", encoding="utf-8") as f:
        f.write(
            "\nmail:\n  transport: smtp\n  smtp:\n"
            f"    host: 127.0.0.1\n    port: {port}\n    security: none\n"
            f"    username: {USER}\n    password_env: HYTETU_SMTP_PASSWORD\n    timeout: 10\n"
        )
    with (folder / "cycle.yaml").open("a", encoding="utf-8") as f:
        # the loopback server needs no protection; 30 a minute would take minutes here
        f.write("\ndispatch:\n  rate_per_minute: 10000\n")
    return folder


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """A fresh secret in every variable the product reads one from; a SQLite database."""
    secrets = {name: fake_secret(name.lower().replace("_", "")) for name in SECRET_ENVS}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("HYTETU_TRANSPORT", raising=False)
    monkeypatch.setenv("HYTETU_DATABASE_URL", f"sqlite:///{tmp_path / 'hytetu.db'}")
    yield secrets
    db.dispose(f"sqlite:///{tmp_path / 'hytetu.db'}")


def everything(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], python_logs: Collector, printed: str
) -> dict[str, bytes]:
    out, err = capfd.readouterr()
    haystack = files_under(tmp_path)
    haystack |= database_dump(f"sqlite:///{tmp_path / 'hytetu.db'}")
    haystack |= prefect_records()
    assert haystack["prefect task runs"], "the API recorded no task runs to search"
    haystack["stdout"] = (out + printed).encode()
    haystack["stderr"] = err.encode()
    haystack["python logging"] = "\n".join(python_logs.lines).encode()
    return haystack


# --- the tests ----------------------------------------------------------------------------


def test_the_simulated_year_over_smtp_leaks_no_secret(
    prefect_api: None,
    smtp_server: tuple[int, Recorder, Authenticator],
    environment: dict[str, str],
    python_logs: Collector,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flows.demo import run_demo

    port, recorder, authenticator = smtp_server
    monkeypatch.setenv("HYTETU_SMTP_PASSWORD", authenticator.expected)
    environment["HYTETU_SMTP_PASSWORD"] = authenticator.expected
    config = smtp_config(tmp_path / "config", port)
    printed: list[str] = []

    result = run_demo(config, tmp_path / "out", echo=printed.append)

    # The secret was really used: every message went through an authenticated session.
    assert result["failed"] == 0, result
    sent = sum(result["messages"].values())
    assert sent > 300 and result["messages"]["memo"] == 43
    assert len(recorder.delivered) == sent
    assert len(authenticator.logins) >= sent  # a session, and its AUTH, per message
    assert not (tmp_path / "out" / "outbox").exists()  # nothing went to the file outbox

    haystack = everything(tmp_path, capfd, python_logs, "\n".join(printed))
    # The search saw the real output: the messages, the memos, the flow runs, the logs.
    assert any(k.startswith("table outgoing_message") for k in haystack)
    assert any(k.endswith(".pdf") for k in haystack)
    assert b"as_of" in haystack["prefect flow runs"]
    assert b"dispatch" in haystack["prefect artifacts"]
    assert haystack["prefect logs"] and haystack["python logging"]
    for name, secret in environment.items():
        assert leaks(secret, haystack) == [], f"{name} leaked"


def test_refused_credentials_stay_out_of_errors_the_database_and_prefect(
    prefect_api: None,
    smtp_server: tuple[int, Recorder, Authenticator],
    environment: dict[str, str],
    python_logs: Collector,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A wrong password, refused by a server that quotes it back: every error is clean."""
    from flows.annual_cycle import annual_cycle
    from hytetu import phases, reports
    from hytetu.errors import DeliveryError
    from hytetu.mail import SmtpSettings, SmtpTransport

    port, recorder, authenticator = smtp_server
    wrong = environment["HYTETU_SMTP_PASSWORD"]
    assert wrong != authenticator.expected
    config = smtp_config(tmp_path / "config", port)
    phases.load(config)

    # The transport's own error, as the outbox, a log line or a failure artifact shows it.
    settings = SmtpSettings(host="127.0.0.1", port=port, security="none", username=USER)
    with pytest.raises(DeliveryError) as info:
        SmtpTransport(settings).send(
            b"Subject: x\r\n\r\nx\r\n", "hyte@hyvaks.example", ["a@b.example"]
        )
    error = info.value
    assert error.permanent and "535" in str(error)
    texts = {
        "str": str(error),
        "repr": repr(error),
        "traceback": "".join(traceback.format_exception(error)),
        "failure artifact": reports.failure_markdown("invitations", error),
        "cause": repr(error.__cause__),  # raised "from None": no chain is shown
    }
    shown = {k: v.encode() for k, v in texts.items()}
    shown["pickle"] = pickle.dumps(error)  # what a persisted Prefect result would hold
    assert leaks(wrong, shown) == []

    # The same through the daily tick: the invitations flow run fails every message.
    due = annual_cycle(as_of=helsinki("2025-10-02 07:00"), out_dir=str(tmp_path / "out"))
    assert due == ["invitations"]
    assert recorder.delivered == []
    with db.session_scope() as s:
        errors = list(s.scalars(select(db.OutgoingMessage.last_error)))
    assert errors and all(e and "535 5.7.8" in e for e in errors)

    haystack = everything(tmp_path, capfd, python_logs, "")
    assert b"535 5.7.8" in haystack["prefect artifacts"]  # the refusals are reported ...
    assert leaks(wrong, haystack) == []  # ... without the password
    for name, secret in environment.items():
        assert leaks(secret, haystack) == [], f"{name} leaked"


def test_a_password_in_the_database_url_is_not_echoed(
    prefect_api: None, postgres_admin: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HYTETU_DATABASE_URL may carry a password: what the product prints about the database
    (the demo's first line) hides it."""
    from conftest import _drop_postgres_db, _new_postgres_db

    from flows import demo

    name, url = _new_postgres_db(postgres_admin)
    secret = fake_secret("dbpassword")
    user_part = url.split("://", 1)[1].split("@", 1)[0]
    with_password = url.replace(f"{user_part}@", f"{user_part}:{quote(secret, safe='')}@", 1)
    monkeypatch.setenv("HYTETU_DATABASE_URL", with_password)
    printed: list[str] = []

    class Stop(Exception):
        pass

    def echo(line: str) -> None:
        printed.append(line)
        raise Stop  # the first line is the one about the database; no need to go on

    try:
        with pytest.raises(Stop):
            demo.run_demo(EXAMPLE, tmp_path / "out", echo)
    finally:
        _drop_postgres_db(postgres_admin, name, with_password)
    assert printed and "***" in printed[0], printed
    assert leaks(secret, {"echo": printed[0].encode()}) == []


@pytest.mark.parametrize(
    ("host", "security", "allowed"),
    [
        ("smtp.county.example", "none", False),  # the password readable on the network
        ("10.0.0.25", "none", False),
        ("smtp.county.example", "starttls", True),
        ("smtp.county.example", "tls", True),
        ("127.0.0.1", "none", True),  # a relay on this machine: never on the wire
        ("localhost", "none", True),
        ("::1", "none", True),
    ],
)
def test_a_password_is_never_sent_unencrypted_over_the_network(
    example: Path, host: str, security: str, allowed: bool
) -> None:
    from hytetu.config import load_config
    from hytetu.errors import ConfigError

    with (example / "region.yaml").open("a", encoding="utf-8") as f:
        f.write(
            f"\nmail:\n  transport: smtp\n  smtp:\n    host: '{host}'\n"
            f"    security: {security}\n    username: {USER}\n"
        )
    if allowed:
        assert load_config(example).region_file.mail.smtp is not None
        return
    with pytest.raises(ConfigError) as info:
        load_config(example)
    (problem,) = info.value.problems
    assert problem.file.endswith("region.yaml") and problem.field == "mail.smtp"
    assert problem.line is not None and "unencrypted" in problem.message
