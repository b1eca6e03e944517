"""The mailbox readers against real servers: Dovecot over IMAP (plain on loopback, STARTTLS
and implicit TLS), the local Graph endpoint and the local EWS endpoint.

Every reader: fetches what is there, skips what is too large (logged with its key), marks
handled (flag, or move to a folder with ä in its name), fetches nothing new the second
time, fetches a message that arrived between ticks, and never deletes anything. A wrong
password and a server that is down give clear errors without the password in them.
"""

from __future__ import annotations

import email
import logging
import traceback
from email import policy
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from ews_server import PASSWORD as EWS_PASSWORD  # the fixtures: pytest finds them here
from ews_server import exchange, secrets
from ews_server import settings as ews_settings

from hytetu import inbox as inbox_module
from hytetu.errors import MailboxError
from hytetu.inbox import InboxSettings, make_reader
from hytetu.mail import MailSettings
from hytetu.readers_imap import ImapAccount, ImapReader, imap_account

pytest_plugins = ["dovecot", "graph_server"]

SAMPLES = Path(__file__).parent / "data" / "mail" / "readers"
HANDLED = "Käsitellyt"


def samples() -> list[Path]:
    return sorted(SAMPLES.glob("*.eml"))


def big_message(size: int) -> bytes:
    """A message just over the cap: a scanned letter with a large attachment."""
    head = (
        b"From: Keuruun kaupunki <kirjaamo@keuruu.example>\r\n"
        b"To: hyte@hyvaks.example\r\n"
        b"Subject: =?utf-8?q?Skannattu_asiakirja_=E2=80=93_liitteet?=\r\n"
        b"Message-ID: <scan-20251120-0001@keuruu.example>\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: application/pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n"
    )
    line = b"JVBERi0xLjcKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFIvRmlsdGVyIC9GbGF0ZURlY29kZT4+\r\n"
    return head + line * (size // len(line) + 1)


def error_text(error: BaseException) -> str:
    return "\n".join([str(error), repr(error), "".join(traceback.format_exception(error))])


def message_ids(mails: list[Any]) -> list[str]:
    return [
        str(email.message_from_bytes(m.raw, policy=policy.default)["Message-ID"]) for m in mails
    ]


# --- IMAP (Dovecot) ----------------------------------------------------------------------


def imap_reader(server: Any, security: str = "none", **inbox: Any) -> ImapReader:
    port = server.tls_port if security == "tls" else server.port
    account = ImapAccount(
        host="127.0.0.1",
        port=port,
        security=security,
        username=server.user,
        password_env=server.password_env,
        timeout=10,
    )
    return ImapReader(account, InboxSettings(**inbox), ssl_context=server.tls_context())


@pytest.mark.parametrize("security", ["none", "starttls", "tls"])
def test_imap_reads_every_sample_flags_them_and_reads_nothing_twice(
    dovecot: Any, security: str
) -> None:
    dovecot.append(samples())
    reader = imap_reader(dovecot, security)
    try:
        first = list(reader.fetch())
        assert [m.raw for m in first] == [p.read_bytes() for p in samples()]
        assert len({m.key for m in first}) == len(first)
        assert all(m.key.split(":")[0].isdigit() and m.key.split(":")[1].isdigit() for m in first)
        for mail in first:
            reader.mark_handled(mail.key)
        assert list(reader.fetch()) == []
    finally:
        reader.close()
    again = imap_reader(dovecot, security)  # a new tick, a new connection
    try:
        assert list(again.fetch()) == []
    finally:
        again.close()
    with dovecot.client() as client:
        client.select_folder("INBOX", readonly=True)
        flags = client.get_flags(client.search("ALL"))
    assert all({b"$HytetuHandled", b"\\Seen"} <= set(f) for f in flags.values())
    assert dovecot.counts() == {"INBOX": len(first)}


def test_imap_moves_handled_mail_to_a_folder_named_in_finnish(dovecot: Any) -> None:
    dovecot.append(samples())
    reader = imap_reader(dovecot, handled_folder=HANDLED)
    try:
        mails = list(reader.fetch())
        for mail in mails[:2]:
            reader.mark_handled(mail.key)
        assert dovecot.counts() == {"INBOX": len(mails) - 2, HANDLED: 2}
        # the folder's name on the wire is modified UTF-7 (RFC 3501 5.1.3)
        with dovecot.client() as client:
            client.folder_encode = False
            assert b"K&AOQ-sitellyt" in [name for _f, _s, name in client.list_folders()]
        rest = list(reader.fetch())
        assert [m.key for m in rest] == [m.key for m in mails[2:]]
        for mail in rest:
            reader.mark_handled(mail.key)
    finally:
        reader.close()
    assert dovecot.counts() == {"INBOX": 0, HANDLED: len(mails)}
    with dovecot.client() as client:
        client.select_folder(HANDLED, readonly=True)
        moved = client.fetch(client.search("ALL"), ["BODY.PEEK[]", "FLAGS"])
    assert sorted(bytes(v[b"BODY[]"]) for v in moved.values()) == sorted(
        p.read_bytes() for p in samples()
    )
    assert all(b"$HytetuHandled" in v[b"FLAGS"] for v in moved.values())


def test_imap_without_move_copies_and_flags_never_expunges(
    dovecot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server without MOVE (RFC 6851): COPY, the original flagged and left in place."""
    dovecot.append(samples()[:2])
    reader = imap_reader(dovecot, handled_folder=HANDLED)
    try:
        client = reader._connect()
        real = client.has_capability
        monkeypatch.setattr(client, "has_capability", lambda c: c != "MOVE" and real(c))
        monkeypatch.setattr(client, "move", None)  # would fail the test if called
        for mail in list(reader.fetch()):
            reader.mark_handled(mail.key)
        assert list(reader.fetch()) == []
    finally:
        reader.close()
    assert dovecot.counts() == {"INBOX": 2, HANDLED: 2}
    with dovecot.client() as client:
        client.select_folder("INBOX", readonly=True)
        flags = client.get_flags(client.search("ALL"))
    assert all(b"\\Deleted" not in f and b"$HytetuHandled" in f for f in flags.values())


def test_imap_skips_a_message_over_the_cap_and_logs_its_key(
    dovecot: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("hytetu.readers_imap.MAX_MESSAGE_BYTES", 200_000)
    big = big_message(200_001)
    dovecot.append([samples()[0], big, samples()[1]])
    reader = imap_reader(dovecot)
    try:
        with caplog.at_level(logging.WARNING, logger="hytetu.readers_imap"):
            mails = list(reader.fetch())
    finally:
        reader.close()
    assert [m.raw for m in mails] == [samples()[0].read_bytes(), samples()[1].read_bytes()]
    skipped = [r.getMessage() for r in caplog.records if "over the limit" in r.getMessage()]
    first, second = (int(m.key.split(":")[1]) for m in mails)
    validity = mails[0].key.split(":")[0]
    assert len(skipped) == 1 and f"{validity}:{first + 1}" in skipped[0]
    assert dovecot.counts() == {"INBOX": 3}  # left where it is, for a person to look at


def test_imap_fetches_a_message_that_arrived_between_ticks(dovecot: Any) -> None:
    dovecot.append(samples()[:1])
    reader = imap_reader(dovecot)
    try:
        first = list(reader.fetch())
        reader.mark_handled(first[0].key)
    finally:
        reader.close()
    dovecot.append(samples()[1:2])
    reader = imap_reader(dovecot)
    try:
        second = list(reader.fetch())
    finally:
        reader.close()
    assert [m.raw for m in second] == [samples()[1].read_bytes()]
    assert second[0].key != first[0].key


def test_imap_a_key_of_another_uidvalidity_is_refused(dovecot: Any) -> None:
    dovecot.append(samples()[:1])
    reader = imap_reader(dovecot)
    try:
        (mail,) = list(reader.fetch())
        uid = mail.key.split(":")[1]
        with pytest.raises(MailboxError, match="UIDVALIDITY"):
            reader.mark_handled(f"1:{uid}")
    finally:
        reader.close()


def test_imap_wrong_password_is_a_clear_error_without_the_password(
    dovecot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "Väärä-salasana-123"  # noqa: S105
    monkeypatch.setenv(dovecot.password_env, wrong)
    reader = imap_reader(dovecot, "tls")
    with pytest.raises(MailboxError, match="login refused") as raised:
        list(reader.fetch())
    text = error_text(raised.value)
    assert wrong not in text and dovecot.password not in text
    assert f"127.0.0.1:{dovecot.tls_port}" in text and dovecot.user in text


def test_imap_empty_password_variable_names_the_variable(
    dovecot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(dovecot.password_env)
    with pytest.raises(MailboxError, match=dovecot.password_env):
        list(imap_reader(dovecot).fetch())


def test_imap_server_down_is_a_clear_error(dovecot: Any) -> None:
    dovecot.stop()
    with pytest.raises(MailboxError, match=r"cannot connect: ConnectionRefusedError") as raised:
        list(imap_reader(dovecot, "tls").fetch())
    assert dovecot.password not in error_text(raised.value)


def test_imap_a_certificate_not_trusted_is_refused(dovecot: Any) -> None:
    account = ImapAccount("127.0.0.1", dovecot.tls_port, "tls", dovecot.user, dovecot.password_env)
    reader = ImapReader(account, InboxSettings())  # the system's CAs: the test cert is not one
    with pytest.raises(MailboxError, match="CERTIFICATE_VERIFY_FAILED"):
        list(reader.fetch())


def test_imap_a_missing_folder_is_a_clear_error(dovecot: Any) -> None:
    with pytest.raises(MailboxError, match="cannot open the folder Vastaukset"):
        list(imap_reader(dovecot, folder="Vastaukset").fetch())


def test_imap_reads_a_subfolder_with_a_finnish_name(dovecot: Any) -> None:
    dovecot.append(samples(), folder="Saapuneet/Hyte-vastaukset ÄÖ")
    mails = one_round(
        imap_reader(dovecot, folder="Saapuneet/Hyte-vastaukset ÄÖ", handled_folder=HANDLED)
    )
    assert len(mails) == len(samples())
    assert dovecot.counts()["Saapuneet/Hyte-vastaukset ÄÖ"] == 0
    assert dovecot.counts()[HANDLED] == len(samples())


def test_the_smtp_account_is_the_imap_account_by_default(tmp_path: Path) -> None:
    mail = MailSettings(
        transport="smtp",
        smtp={"host": "smtp.hyvaks.example", "username": "hyte@hyvaks.example"},
    )
    account = imap_account(mail)
    assert account == ImapAccount(
        "smtp.hyvaks.example", 993, "tls", "hyte@hyvaks.example", "HYTETU_SMTP_PASSWORD"
    )
    reader = make_reader(mail, tmp_path)
    assert isinstance(reader, ImapReader)
    assert reader.mailbox == "imap://hyte@hyvaks.example@smtp.hyvaks.example/INBOX"
    starttls = MailSettings(
        transport="smtp",
        smtp={"host": "smtp.hyvaks.example", "username": "hyte@hyvaks.example"},
        inbox={"imap_host": "imap.hyvaks.example", "imap_security": "starttls"},
    )
    assert imap_account(starttls).port == 143
    assert imap_account(starttls).host == "imap.hyvaks.example"


def test_plain_imap_is_refused_unless_on_this_machine() -> None:
    with pytest.raises(ValueError, match="unencrypted"):
        InboxSettings(imap_host="imap.hyvaks.example", imap_security="none")
    mail = MailSettings(
        transport="smtp",
        smtp={"host": "smtp.hyvaks.example", "username": "hyte", "security": "tls"},
        inbox={"imap_security": "none"},
    )
    with pytest.raises(MailboxError, match="unencrypted to smtp.hyvaks.example"):
        imap_account(mail)
    assert InboxSettings(imap_host="127.0.0.1", imap_security="none").imap_security == "none"


def test_reading_off_gives_no_reader(tmp_path: Path) -> None:
    mail = MailSettings(transport="smtp", smtp={"host": "x.example"}, inbox={"read": False})
    assert inbox_module.make_reader(mail, tmp_path) is None


def test_imap_reads_at_most_the_tick_cap_and_the_rest_next_time(
    dovecot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("hytetu.readers_imap.MAX_MESSAGES_PER_TICK", 3)
    dovecot.append(samples())
    first = imap_round(dovecot)
    second = imap_round(dovecot)
    assert len(first) == 3 and len(second) == len(samples()) - 3
    assert sorted(m.raw for m in first + second) == sorted(p.read_bytes() for p in samples())


def one_round(reader: Any) -> list[Any]:
    """One tick of ``reader``: fetch everything, mark it handled, close."""
    try:
        mails = list(reader.fetch())
        for mail in mails:
            reader.mark_handled(mail.key)
        return mails
    finally:
        reader.close()


def imap_round(server: Any, **inbox: Any) -> list[Any]:
    return one_round(imap_reader(server, **inbox))


def test_imap_on_a_server_without_keywords_needs_a_handled_folder(
    dovecot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Like Exchange's IMAP: PERMANENTFLAGS without \\* (no keywords kept)."""
    from imapclient import IMAPClient

    real = IMAPClient.select_folder

    def no_keywords(self: IMAPClient, folder: str, readonly: bool = False) -> dict:
        selected = real(self, folder, readonly)
        selected[b"PERMANENTFLAGS"] = (b"\\Seen", b"\\Answered", b"\\Flagged", b"\\Deleted")
        return selected

    monkeypatch.setattr(IMAPClient, "select_folder", no_keywords)
    dovecot.append(samples())
    with pytest.raises(MailboxError, match="set mail.inbox.handled_folder"):
        list(imap_reader(dovecot).fetch())
    mails = imap_round(dovecot, handled_folder=HANDLED)
    assert len(mails) == len(samples())
    assert imap_round(dovecot, handled_folder=HANDLED) == []
    assert dovecot.counts() == {"INBOX": 0, HANDLED: len(samples())}


@pytest.mark.prefect
def test_imap_password_from_a_prefect_secret_block(
    prefect_api: None, dovecot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uuid

    from prefect.blocks.system import Secret

    monkeypatch.delenv(dovecot.password_env)
    name = f"hytetu-imap-test-{uuid.uuid4().hex[:8]}"
    Secret(value=dovecot.password).save(name)
    dovecot.append(samples()[:1])
    port = dovecot.port
    account = ImapAccount("127.0.0.1", port, "none", dovecot.user, "UNSET_ENV", name)
    reader = ImapReader(account, InboxSettings())
    try:
        assert [m.raw for m in reader.fetch()] == [samples()[0].read_bytes()]
    finally:
        reader.close()
    missing = ImapAccount("127.0.0.1", port, "none", dovecot.user, "UNSET_ENV", "no-such-block")
    with pytest.raises(MailboxError, match="no-such-block"):
        list(ImapReader(missing, InboxSettings()).fetch())


def test_make_reader_routes_ews_to_the_ews_reader(tmp_path: Path) -> None:
    from hytetu.readers_ews import EwsReader

    mail = MailSettings(
        transport="ews",
        ews={"server": "mail.hyvaks.example", "auth": "ntlm", "username": "HYVAKS\\svc"},
        inbox={"mailbox": MAILBOX, "handled_folder": HANDLED},
    )
    reader = make_reader(mail, tmp_path)
    assert isinstance(reader, EwsReader)
    assert reader.mailbox == f"ews://{MAILBOX}/INBOX"
    with pytest.raises(MailboxError, match="mail.inbox.mailbox"):
        make_reader(MailSettings(transport="ews", ews=mail.ews), tmp_path)


# --- Microsoft Graph (the local endpoint) --------------------------------------------------

MAILBOX = "hyte@hyvaks.example"


def positions(tmp_path: Path) -> str:
    """A database with the readers' position table, at ``tmp_path``; its URL."""
    from hytetu import db

    url = f"sqlite:///{tmp_path / 'positions.db'}"
    db.Base.metadata.create_all(db.get_engine(url), tables=[db.MailboxPosition.__table__])
    return url


def stored_positions(tmp_path: Path) -> str:
    """Every delta link kept in that database, one per line."""
    from sqlalchemy import select

    from hytetu import db

    with db.session_scope(positions(tmp_path)) as s:
        return "\n".join(s.scalars(select(db.MailboxPosition.value)))


def graph_reader(server: Any, tmp_path: Path, waits: list[float] | None = None, **inbox: Any):
    from hytetu.readers import DatabaseDeltaStore
    from hytetu.readers_graph import GraphReader

    sleep = waits.append if waits is not None else (lambda _s: None)
    return GraphReader(
        server.settings(sender=MAILBOX),
        InboxSettings(**inbox),
        DatabaseDeltaStore(positions(tmp_path)),
        sleep=sleep,
    )


def graph_round(server: Any, tmp_path: Path, **inbox: Any) -> list[Any]:
    return one_round(graph_reader(server, tmp_path, **inbox))


def test_graph_reads_through_delta_pages_and_keeps_the_delta_link(
    graph_server: Any, tmp_path: Path
) -> None:
    graph_server.page_size = 1
    raws = [p.read_bytes() for p in samples()]
    for raw in raws:
        graph_server.deliver(raw)

    mails = graph_round(graph_server, tmp_path)

    assert [m.raw for m in mails] == raws
    deltas = graph_server.calls("delta")
    assert deltas[0].query["$select"].split(",")[0] == "id"
    assert "/mailFolders/inbox/messages/delta" in deltas[0].path
    assert sum("$skiptoken" in d.query for d in deltas) == len(raws) - 1  # every nextLink
    assert "$deltatoken=" in stored_positions(tmp_path)
    # marked by category and read, nothing moved, nothing deleted
    inbox = graph_server.in_folder("inbox")
    assert len(inbox) == len(raws)
    assert all(m["isRead"] and m["categories"] == ["$HytetuHandled"] for m in inbox)

    before = len(graph_server.calls("delta"))
    assert graph_round(graph_server, tmp_path) == []  # the changes are only our own marks
    again = graph_server.calls("delta")[before:]
    assert "$deltatoken" in again[0].query  # the kept link, not a full read


def test_graph_moves_handled_mail_to_a_folder_it_creates(graph_server: Any, tmp_path: Path) -> None:
    for path in samples():
        graph_server.deliver(path.read_bytes())

    mails = graph_round(graph_server, tmp_path, handled_folder=HANDLED)

    folder = graph_server.folder_named(HANDLED)
    assert folder is not None
    assert len(graph_server.calls("createFolder")) == 1
    assert graph_server.in_folder("inbox") == []
    assert sorted(m["raw"] for m in graph_server.in_folder(folder)) == sorted(m.raw for m in mails)
    assert graph_round(graph_server, tmp_path, handled_folder=HANDLED) == []
    assert len(graph_server.calls("createFolder")) == 1  # found the second time
    assert len(graph_server.messages) == len(samples())  # nothing deleted


def test_graph_a_message_arriving_between_ticks_comes_next_time(
    graph_server: Any, tmp_path: Path
) -> None:
    graph_server.deliver(samples()[0].read_bytes())
    assert len(graph_round(graph_server, tmp_path)) == 1
    graph_server.deliver(samples()[1].read_bytes())
    later = graph_round(graph_server, tmp_path)
    assert [m.raw for m in later] == [samples()[1].read_bytes()]


def test_graph_waits_out_429_retry_after(graph_server: Any, tmp_path: Path) -> None:
    graph_server.deliver(samples()[0].read_bytes())
    graph_server.inject(
        "delta",
        graph_server.error(
            429,
            "ApplicationThrottled",
            "Application is over its MailboxConcurrency limit.",
            **{"Retry-After": "7"},
        ),
    )
    graph_server.inject(
        "value",
        graph_server.error(429, "TooManyRequests", "Too many requests", **{"Retry-After": "3"}),
    )
    waits: list[float] = []
    reader = graph_reader(graph_server, tmp_path, waits)
    try:
        mails = list(reader.fetch())
    finally:
        reader.close()
    assert [m.raw for m in mails] == [samples()[0].read_bytes()]
    assert waits == [7.0, 3.0]


def test_graph_an_expired_delta_link_reads_the_folder_again(
    graph_server: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = graph_server.deliver(samples()[0].read_bytes())
    assert [m.key for m in graph_round(graph_server, tmp_path, handled_folder=HANDLED)] == [first]
    graph_server.expire_delta_links()
    graph_server.deliver(samples()[1].read_bytes())

    with caplog.at_level(logging.WARNING, logger="hytetu.readers_graph"):
        mails = graph_round(graph_server, tmp_path, handled_folder=HANDLED)

    assert [m.raw for m in mails] == [samples()[1].read_bytes()]
    assert any("410" in r.getMessage() for r in caplog.records)
    statuses = [e for e in graph_server.events if e.startswith("GET delta")]
    assert statuses == ["GET delta 200", "GET delta 410", "GET delta 200"]
    assert "$deltatoken" not in graph_server.calls("delta")[-1].query  # a full read again
    assert "$deltatoken=" in stored_positions(tmp_path)


def test_graph_skips_a_message_over_the_cap_without_reading_it_all(
    graph_server: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr("hytetu.readers_graph.MAX_MESSAGE_BYTES", 200_000)
    big = graph_server.deliver(big_message(200_001))
    small = graph_server.deliver(samples()[0].read_bytes())
    reader = graph_reader(graph_server, tmp_path)
    try:
        with caplog.at_level(logging.WARNING, logger="hytetu.readers_graph"):
            mails = list(reader.fetch())
    finally:
        reader.close()
    assert [m.key for m in mails] == [small]
    assert any(big in r.getMessage() and "over the limit" in r.getMessage() for r in caplog.records)


def test_graph_wrong_secret_and_server_down_are_clear_errors(
    graph_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "väärä-salaisuus-42"  # noqa: S105
    monkeypatch.setenv(graph_server.secret_env, wrong)
    with pytest.raises(MailboxError, match="invalid_client") as raised:
        list(graph_reader(graph_server, tmp_path).fetch())
    assert wrong not in error_text(raised.value)
    monkeypatch.setenv(graph_server.secret_env, graph_server.secret)
    graph_server.stop()
    with pytest.raises(MailboxError, match="no token|ConnectError|Connection") as raised:
        list(graph_reader(graph_server, tmp_path).fetch())
    assert graph_server.secret not in error_text(raised.value)


def test_graph_without_mail_readwrite_says_which_permission(
    graph_server: Any, tmp_path: Path
) -> None:
    message = graph_server.deliver(samples()[0].read_bytes())
    graph_server.inject(
        "patch",
        graph_server.error(
            403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
        ),
    )
    reader = graph_reader(graph_server, tmp_path)
    try:
        list(reader.fetch())
        with pytest.raises(MailboxError, match="Mail.ReadWrite"):
            reader.mark_handled(message)
    finally:
        reader.close()


def test_make_reader_routes_graph_with_its_delta_link_in_the_database(
    graph_server: Any, tmp_path: Path
) -> None:
    from hytetu.readers_graph import GraphReader

    mail = MailSettings(
        transport="graph", graph=graph_server.settings(), inbox={"mailbox": MAILBOX}
    )
    reader = make_reader(mail, tmp_path / "out", positions(tmp_path))
    assert isinstance(reader, GraphReader)
    graph_server.deliver(samples()[0].read_bytes())
    try:
        assert len(list(reader.fetch())) == 1
    finally:
        reader.close()
    assert "$deltatoken=" in stored_positions(tmp_path)
    assert not (tmp_path / "out").exists()  # nothing of the position in the out folder


# --- EWS (the local endpoint) ------------------------------------------------------------


def ews_round(port: int, **inbox: Any) -> list[Any]:
    from hytetu.readers_ews import EwsReader

    return one_round(EwsReader(ews_settings(port, sender=MAILBOX), InboxSettings(**inbox)))


def test_ews_reads_the_mime_and_marks_by_category(exchange: Any, secrets: None) -> None:
    state, port = exchange
    raws = [p.read_bytes() for p in samples()]
    ids = [state.deliver(raw) for raw in raws]

    mails = ews_round(port)

    assert [m.raw for m in mails] == raws and [m.key for m in mails] == ids
    assert all(i["is_read"] and i["categories"] == ["$HytetuHandled"] for i in state.items.values())
    assert "DeleteItem" not in state.operations()
    assert ews_round(port) == []
    assert len(state.in_folder("AAMk-inbox")) == len(raws)


def test_ews_moves_to_a_folder_it_creates_and_finds_it_later(exchange: Any, secrets: None) -> None:
    state, port = exchange
    for path in samples():
        state.deliver(path.read_bytes())

    mails = ews_round(port, handled_folder=HANDLED)

    folder = state.folder_named(HANDLED)
    assert folder is not None and state.operations().count("CreateFolder") == 1
    assert state.in_folder("AAMk-inbox") == []
    assert sorted(i["raw"] for i in state.in_folder(folder)) == sorted(m.raw for m in mails)
    state.deliver(samples()[0].read_bytes())
    later = ews_round(port, handled_folder=HANDLED)
    assert [m.raw for m in later] == [samples()[0].read_bytes()]
    assert state.operations().count("CreateFolder") == 1  # found by FindFolder this time
    assert len(state.items) == len(samples()) + 1  # nothing deleted


def test_ews_skips_an_item_over_the_cap(
    exchange: Any, secrets: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("hytetu.readers_ews.MAX_MESSAGE_BYTES", 200_000)
    state, port = exchange
    big = state.deliver(big_message(200_001))
    small = state.deliver(samples()[0].read_bytes())
    with caplog.at_level(logging.WARNING, logger="hytetu.readers_ews"):
        mails = ews_round(port)
    assert [m.key for m in mails] == [small]
    assert any(big in r.getMessage() for r in caplog.records)
    mime_asked = [
        body
        for op, _h, body in state.requests
        if op == "GetItem" and b"MimeContent" in ET.tostring(body)
    ]
    assert len(mime_asked) == 1  # the big one's MIME was never asked for


def test_ews_reads_a_subfolder_of_the_inbox(exchange: Any, secrets: None) -> None:
    state, port = exchange
    state.folders["AAMkADSub"] = ("Hyte-vastaukset", "AAMk-inbox")
    state.deliver(samples()[0].read_bytes(), folder="AAMkADSub")
    state.deliver(samples()[1].read_bytes())  # in the Inbox itself: not read
    mails = ews_round(port, folder="INBOX/Hyte-vastaukset")
    assert [m.raw for m in mails] == [samples()[0].read_bytes()]
    with pytest.raises(MailboxError, match="no folder INBOX/Puuttuva"):
        ews_round(port, folder="INBOX/Puuttuva")


def test_ews_wrong_password_and_server_down_are_clear_errors(
    exchange: Any, secrets: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hytetu.readers_ews import EwsReader

    state, port = exchange
    state.deliver(samples()[0].read_bytes())
    wrong = "Väärä-ews-salasana"  # noqa: S105
    monkeypatch.setenv("HYTETU_TEST_EWS_PASSWORD", wrong)
    with pytest.raises(MailboxError, match="refused the credentials") as raised:
        ews_round(port)
    assert wrong not in error_text(raised.value) and EWS_PASSWORD not in error_text(raised.value)
    monkeypatch.setenv("HYTETU_TEST_EWS_PASSWORD", EWS_PASSWORD)
    from ews_server import _free_port

    reader = EwsReader(ews_settings(_free_port(), sender=MAILBOX), InboxSettings())
    with pytest.raises(MailboxError, match="Connection refused"):
        list(reader.fetch())


def test_the_documented_inbox_block_is_valid_config() -> None:
    import re

    import yaml

    doc = (Path(__file__).parent.parent / "docs" / "mailbox-readers.md").read_text("utf-8")
    block = re.search(r"```yaml\n(.*?)```", doc, re.DOTALL)
    assert block is not None
    mail = MailSettings(**yaml.safe_load(block.group(1))["mail"])
    assert mail.inbox.handled_folder == "Käsitellyt"
    account = imap_account(mail)
    assert (account.host, account.port, account.security) == ("imap.hyvaks.example", 993, "tls")
    assert account.password_env == "HYTETU_IMAP_PASSWORD"
