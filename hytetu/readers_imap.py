"""IMAP mailbox reader (IMAPClient), for counties that send by SMTP.

The account is the SMTP one (``mail.smtp`` username and password) unless ``mail.inbox``
names another; the host is ``inbox.imap_host`` or the SMTP host. Implicit TLS (993) or
STARTTLS; a plain connection only to this machine.

- Key: ``UIDVALIDITY:UID`` of the folder read, stable across sessions (RFC 3501 2.3.1.1).
- Fetch: every message without the handled keyword (``$HytetuHandled``), oldest UID first,
  at most ``MAX_MESSAGES_PER_TICK``; the sizes (``RFC822.SIZE``) first, and a message over
  ``MAX_MESSAGE_BYTES`` is logged with its key and not fetched. Bodies are read with
  ``BODY.PEEK[]``, which leaves ``\\Seen`` alone until the message is handled.
- Mark handled: the keyword and ``\\Seen``; with ``handled_folder``, a ``UID MOVE`` (RFC
  6851) to that folder (created when missing; its name in modified UTF-7, e.g.
  ``K&AOQ-sitellyt``), or on a server without MOVE a ``UID COPY`` and the keyword on the
  original, which stays. Nothing is ever expunged or deleted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from imapclient import IMAPClient
from imapclient import exceptions as imap_errors

from hytetu.errors import DeliveryError, MailboxError
from hytetu.inbox import MAX_MESSAGE_BYTES, MAX_MESSAGES_PER_TICK, IncomingMail, loopback
from hytetu.secret_blocks import prefect_secret

if TYPE_CHECKING:
    from hytetu.inbox import InboxSettings
    from hytetu.mail import MailSettings

log = logging.getLogger(__name__)

_SIZE_BATCH = 500  # UIDs per FETCH RFC822.SIZE


@dataclass(frozen=True)
class ImapAccount:
    """Where and as whom the IMAP reader logs in (the secret itself is not here)."""

    host: str
    port: int
    security: str  # tls | starttls | none
    username: str
    password_env: str
    password_block: str | None = None
    timeout: float = 60.0


def imap_account(settings: MailSettings) -> ImapAccount:
    """The IMAP account of ``mail``: ``mail.inbox``'s fields, else the SMTP account's."""
    inbox, smtp = settings.inbox, settings.smtp
    host = inbox.imap_host or (smtp.host if smtp else None)
    username = inbox.imap_username or (smtp.username if smtp else None)
    if not host:
        raise MailboxError("mail.inbox.imap_host is needed (there is no mail.smtp.host)")
    if not username:
        raise MailboxError(
            "mail.inbox.imap_username is needed: mail.smtp has no username to read its mailbox"
        )
    if inbox.imap_security == "none" and not loopback(host):
        raise MailboxError(
            f"mail.inbox.imap_security none would send the password unencrypted to {host}; "
            "use tls or starttls (none is only for a server on this machine)"
        )
    port = inbox.imap_port or (993 if inbox.imap_security == "tls" else 143)
    password_env = inbox.imap_password_env or (
        smtp.password_env if smtp else "HYTETU_IMAP_PASSWORD"
    )
    return ImapAccount(
        host=host,
        port=port,
        security=inbox.imap_security,
        username=username,
        password_env=password_env,
        password_block=inbox.imap_password_block,
        timeout=inbox.imap_timeout,
    )


class ImapReader:
    """Reads one folder of one IMAP account; one connection for the whole tick."""

    name = "imap"

    def __init__(
        self,
        account: ImapAccount,
        inbox: InboxSettings,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.account = account
        self.folder = inbox.folder
        self.handled_folder = inbox.handled_folder
        self.keyword = inbox.handled_keyword.encode("ascii")
        self.ssl_context = ssl_context or ssl.create_default_context()
        self.mailbox = f"imap://{account.username}@{account.host}/{inbox.folder}"
        self._client: IMAPClient | None = None
        self._uidvalidity: int | None = None
        self._password = ""
        self._handled_folder_ready = False
        self._keywords = True

    # --- the connection ----------------------------------------------------------------

    def _where(self) -> str:
        a = self.account
        return f"IMAP {a.host}:{a.port} ({a.security}) as {a.username}"

    def _error(self, text: str) -> MailboxError:
        if self._password:
            text = text.replace(self._password, "***")
        return MailboxError(f"{self._where()}: {text}")

    def _read_password(self) -> str:
        a = self.account
        if a.password_block:
            try:
                value = prefect_secret(a.password_block, "IMAP")
            except DeliveryError as e:
                raise MailboxError(str(e)) from None
            where = f"the Prefect Secret block {a.password_block}"
        else:
            value = os.environ.get(a.password_env, "")
            where = f"the environment variable {a.password_env}"
        if not value:
            raise self._error(f"no password: {where} is empty")
        return value

    def _connect(self) -> IMAPClient:
        if self._client is not None:
            return self._client
        a = self.account
        password = self._read_password()
        self._password = password
        try:
            client = IMAPClient(
                a.host,
                port=a.port,
                ssl=a.security == "tls",
                ssl_context=self.ssl_context,
                timeout=a.timeout,
            )
        except (OSError, imap_errors.IMAPClientError) as e:
            raise self._error(f"cannot connect: {type(e).__name__}: {e}") from None
        try:
            if a.security == "starttls":
                client.starttls(self.ssl_context)
            if client.has_capability("AUTH=PLAIN"):  # UTF-8 passwords; LOGIN is ASCII only
                client.plain_login(a.username, password)
            else:
                client.login(a.username, password)
        except imap_errors.LoginError as e:
            _close_quietly(client)
            raise self._error(f"login refused (check the username and password): {e}") from None
        except (OSError, ssl.SSLError, imap_errors.IMAPClientError, UnicodeError) as e:
            _close_quietly(client)
            raise self._error(f"cannot log in: {type(e).__name__}: {e}") from None
        try:
            selected = client.select_folder(self.folder)
        except imap_errors.IMAPClientError as e:
            _close_quietly(client)
            raise self._error(f"cannot open the folder {self.folder}: {e}") from None
        self._uidvalidity = int(selected[b"UIDVALIDITY"])
        permanent = {bytes(f) for f in selected.get(b"PERMANENTFLAGS", ())}
        # \* : the server keeps any keyword; a server that keeps none (Exchange's IMAP)
        # can only have handled mail moved away
        self._keywords = b"\\*" in permanent or self.keyword in permanent
        if not self._keywords and not (self.handled_folder and client.has_capability("MOVE")):
            _close_quietly(client)
            raise self._error(
                f"the server keeps no keywords (PERMANENTFLAGS {sorted(permanent)}) and so "
                "cannot mark mail handled in place: set mail.inbox.handled_folder"
            )
        self._client = client
        return client

    def close(self) -> None:
        if self._client is not None:
            _close_quietly(self._client)
            self._client = None

    # --- the reader --------------------------------------------------------------------

    def fetch(self) -> Iterator[IncomingMail]:
        client = self._connect()
        try:
            # without keywords, handled mail has been moved away: all that is here is new
            criteria = ["UNKEYWORD", self.keyword] if self._keywords else ["ALL"]
            uids = sorted(client.search(criteria))[:MAX_MESSAGES_PER_TICK]
        except (OSError, imap_errors.IMAPClientError) as e:
            raise self._error(f"SEARCH in {self.folder} failed: {e}") from None
        for start in range(0, len(uids), _SIZE_BATCH):
            batch = uids[start : start + _SIZE_BATCH]
            try:
                sizes = client.fetch(batch, ["RFC822.SIZE"])
            except (OSError, imap_errors.IMAPClientError) as e:
                raise self._error(f"FETCH RFC822.SIZE failed: {e}") from None
            for uid in batch:
                key = f"{self._uidvalidity}:{uid}"
                if uid not in sizes:  # expunged by someone else meanwhile
                    continue
                size = int(sizes[uid][b"RFC822.SIZE"])
                if size > MAX_MESSAGE_BYTES:
                    log.warning(
                        "%s: skipped %s: %d bytes is over the limit of %d",
                        self.mailbox,
                        key,
                        size,
                        MAX_MESSAGE_BYTES,
                    )
                    continue
                try:
                    body = client.fetch([uid], ["BODY.PEEK[]"]).get(uid, {}).get(b"BODY[]")
                except (OSError, imap_errors.IMAPClientError) as e:
                    raise self._error(f"FETCH of {key} failed: {e}") from None
                if body is None:
                    continue
                yield IncomingMail(key, bytes(body))

    def mark_handled(self, key: str) -> None:
        client = self._connect()
        validity, _, uid_text = key.partition(":")
        if not uid_text.isdigit() or validity != str(self._uidvalidity):
            raise self._error(
                f"{key} is not a message of {self.folder} as it is now "
                f"(UIDVALIDITY {self._uidvalidity}); nothing was marked"
            )
        uid = int(uid_text)
        flags: list[Any] = [self.keyword, b"\\Seen"] if self._keywords else [b"\\Seen"]
        try:
            # the flags first: they go with the message, and should the move fail it is
            # handled all the same (not fetched again)
            client.add_flags([uid], flags, silent=True)
            if not self.handled_folder:
                return
            self._ensure_handled_folder(client)
            if client.has_capability("MOVE"):
                client.move([uid], self.handled_folder)
            else:  # a COPY; the flagged original stays where it is
                client.copy([uid], self.handled_folder)
        except (OSError, imap_errors.IMAPClientError) as e:
            raise self._error(f"cannot mark {key} handled: {e}") from None

    def _ensure_handled_folder(self, client: IMAPClient) -> None:
        if self._handled_folder_ready:
            return
        assert self.handled_folder is not None
        if not client.folder_exists(self.handled_folder):
            client.create_folder(self.handled_folder)
            log.info("%s: created the folder %s", self.mailbox, self.handled_folder)
        self._handled_folder_ready = True


def _close_quietly(client: IMAPClient) -> None:
    try:
        client.logout()
    except (TimeoutError, OSError, imap_errors.IMAPClientError, ssl.SSLError):
        with contextlib.suppress(OSError):
            client.shutdown()
