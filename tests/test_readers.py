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

import pytest

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
        "From: Keuruun kaupunki <kirjaamo@keuruu.example>\r\n"
        "To: hyte@hyvaks.example\r\n"
        "Subject: =?utf-8?q?Skannattu_asiakirja_=E2=80=93_liitteet?=\r\n"
        "Message-ID: <scan-20251120-0001@keuruu.example>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: application/pdf\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n"
    ).encode()
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
    reader = imap_reader(dovecot, folder="Saapuneet/Hyte-vastaukset ÄÖ", handled_folder=HANDLED)
    try:
        mails = list(reader.fetch())
        for mail in mails:
            reader.mark_handled(mail.key)
    finally:
        reader.close()
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
