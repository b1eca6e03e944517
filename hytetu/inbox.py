"""Reading the county's mailbox: what every mailbox reader does, and its settings.

The readers only fetch raw messages and mark them handled; what a message is (an RSVP, a
bounce, a registry's receipt, an auto-reply) is decided elsewhere, and the database keeps
which messages were handled, so a re-run handles nothing twice. Mail is never deleted:
handled messages are flagged, or moved to ``handled_folder`` when one is named.

This module is cheap to import (the config schema uses the settings); the IMAP, EWS and
Graph readers live in ``hytetu.readers`` and are imported only when used.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from hytetu.mail import MailSettings

log = logging.getLogger(__name__)

# Hostile mail is data: a message larger than this is not fetched (its key is logged).
MAX_MESSAGE_BYTES = 10 * 1024 * 1024
# Nor more than this many messages in one tick (the rest wait for the next).
MAX_MESSAGES_PER_TICK = 5000


@dataclass(frozen=True)
class IncomingMail:
    """One message as its mailbox holds it.

    ``key`` is the message's stable identity in that mailbox (IMAP ``UIDVALIDITY:UID``,
    the EWS item id, the Graph message id, the file name of the folder reader); with the
    reader's ``mailbox`` it makes the database row that says the message was handled.
    """

    key: str
    raw: bytes


class MailboxReader(Protocol):
    """What every mailbox reader does."""

    name: str  # "folder" | "imap" | "ews" | "graph"
    mailbox: str  # the account and folder read, e.g. "imap://hyte@mail.county.example/INBOX"

    def fetch(self) -> Iterator[IncomingMail]:
        """The messages not yet marked handled, oldest first, each at most
        MAX_MESSAGE_BYTES (larger ones are logged and skipped). May yield one already
        handled (a crash between handling and marking): the caller skips it by key."""
        ...

    def mark_handled(self, key: str) -> None:
        """Flag the message (or move it to ``handled_folder``); never delete it."""
        ...

    def close(self) -> None: ...


class InboxSettings(BaseModel):
    """The ``mail.inbox:`` block of region.yaml: which folder of the county's mailbox is
    read for replies, and where handled mail goes. The server and the credentials are the
    sending transport's (mail.smtp, mail.ews, mail.graph), except IMAP's host and port."""

    model_config = ConfigDict(extra="forbid")
    read: bool = Field(True, description="Read the mailbox on every tick (false: only send)")
    folder: str = Field(
        "INBOX",
        description="Folder read for replies: INBOX, or a path below the top of the "
        "mailbox with / between the levels (e.g. INBOX/Hyte or Hyte-vastaukset)",
    )
    mailbox: str | None = Field(
        None,
        description="EWS and Graph: the mailbox read; default mail.ews.sender / mail.graph.sender",
    )
    handled_folder: str | None = Field(
        None,
        description="Folder handled messages are moved to (created when missing); "
        "default: leave them where they are, flagged",
    )
    imap_host: str | None = Field(None, description="IMAP server; default mail.smtp.host")
    imap_port: int | None = Field(
        None, description="IMAP port; default 993 for tls, 143 for starttls and none"
    )
    imap_security: Literal["tls", "starttls", "none"] = Field(
        "tls", description="tls (implicit, port 993) | starttls | none (loopback only)"
    )
    imap_username: str | None = Field(None, description="default mail.smtp.username")
    imap_password_env: str | None = Field(
        None, description="Env var with the IMAP password; default mail.smtp.password_env"
    )
    imap_password_block: str | None = Field(
        None, description="Prefect Secret block with the IMAP password (instead of the env var)"
    )
    imap_timeout: float = Field(60.0, gt=0, description="Seconds per IMAP command")
    handled_keyword: str = Field(
        "$HytetuHandled",
        pattern=r"^[A-Za-z0-9$_.-]+$",
        description="IMAP keyword (and Graph/EWS category) that marks a message handled",
    )
    folder_path: str = Field(
        "inbox", description="File transport: folder of .eml files, relative to --out"
    )

    @model_validator(mode="after")
    def _no_password_in_clear(self) -> InboxSettings:
        """As for SMTP: a login on a plain connection only to this machine. (When imap_host
        is not given, the reader checks mail.smtp.host the same way.)"""
        if self.imap_security == "none" and self.imap_host and not loopback(self.imap_host):
            raise ValueError(
                "imap_security none would send the password unencrypted over the network; "
                "use tls or starttls (none is only for a server on this machine)"
            )
        return self


def loopback(host: str) -> bool:
    """Whether ``host`` is this machine (localhost, 127.0.0.0/8, ::1)."""
    import ipaddress

    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class FolderReader:
    """The file transport's mailbox: ``.eml`` files in a folder (the demo's simulated
    replies). Handled files move to ``handled/`` beside them."""

    name = "folder"

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.mailbox = f"folder:{self.folder.resolve()}"

    def fetch(self) -> Iterator[IncomingMail]:
        if not self.folder.is_dir():
            return
        for path in sorted(self.folder.glob("*.eml"))[:MAX_MESSAGES_PER_TICK]:
            size = path.stat().st_size
            if size > MAX_MESSAGE_BYTES:
                log.warning("skipped %s: %d bytes is over the limit", path.name, size)
                continue
            yield IncomingMail(path.name, path.read_bytes())

    def mark_handled(self, key: str) -> None:
        handled = self.folder / "handled"
        handled.mkdir(exist_ok=True)
        (self.folder / key).replace(handled / key)

    def close(self) -> None:
        pass


def make_reader(
    settings: MailSettings, out_dir: Path, url: str | None = None
) -> MailboxReader | None:
    """The reader of the mailbox the sending transport uses; None when reading is off.
    Its position between ticks (Graph's delta link) is kept in the database at ``url``."""
    import os

    inbox = settings.inbox
    if not inbox.read:
        return None
    choice = os.environ.get("HYTETU_TRANSPORT") or settings.transport
    if choice == "file":
        return FolderReader(out_dir / inbox.folder_path)
    from hytetu import readers  # IMAP, EWS, Graph: imported only when used

    return readers.make(choice, settings, readers.DatabaseDeltaStore(url))
