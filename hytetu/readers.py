"""The mailbox readers of the sending transports: IMAP beside SMTP, EWS, Microsoft Graph.

Each reads the ``mail.inbox`` folder of the account the transport sends with, so no second
configuration is needed, and implements ``hytetu.inbox.MailboxReader``. The IMAP reader is
in ``readers_imap``, the EWS one in ``readers_ews`` and the Graph one in ``readers_graph``;
each is imported only when chosen. Graph keeps its delta link between ticks in a
``DeltaStore``: the database's ``mailbox_position`` table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from hytetu.errors import MailboxError

if TYPE_CHECKING:
    from hytetu.inbox import MailboxReader
    from hytetu.mail import MailSettings


class DeltaStore(Protocol):
    """Where a reader keeps its position between ticks (Graph's ``@odata.deltaLink``), per
    mailbox."""

    def get(self, mailbox: str) -> str | None: ...

    def put(self, mailbox: str, value: str | None) -> None: ...


class DatabaseDeltaStore:
    """The positions in the database (table ``mailbox_position``), one row per mailbox."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url

    def get(self, mailbox: str) -> str | None:
        from hytetu import db

        with db.session_scope(self.url) as s:
            row = s.get(db.MailboxPosition, mailbox)
            return row.value if row else None

    def put(self, mailbox: str, value: str | None) -> None:
        from hytetu import db

        with db.session_scope(self.url) as s:
            row = s.get(db.MailboxPosition, mailbox)
            if value is None:
                if row is not None:
                    s.delete(row)
            elif row is None:
                s.add(db.MailboxPosition(mailbox=mailbox, value=value))
            else:
                row.value, row.updated_at = value, db.utcnow()


def make(choice: str, settings: MailSettings, state: DeltaStore) -> MailboxReader:
    """The reader for transport ``choice`` ("smtp", "ews", "graph") of ``settings``;
    ``state`` keeps Graph's delta link between ticks."""
    inbox = settings.inbox
    if choice == "smtp":
        from hytetu.readers_imap import ImapReader, imap_account

        return ImapReader(imap_account(settings), inbox)
    if choice == "ews":
        if settings.ews is None:
            raise MailboxError("mail.transport is ews but mail.ews is missing")
        from hytetu.readers_ews import EwsReader

        return EwsReader(settings.ews, inbox)
    if choice == "graph":
        if settings.graph is None:
            raise MailboxError("mail.transport is graph but mail.graph is missing")
        from hytetu.readers_graph import GraphReader

        return GraphReader(settings.graph, inbox, state)
    raise MailboxError(f"no mailbox reader for mail.transport {choice!r}")
