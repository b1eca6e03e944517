"""The mailbox readers of the sending transports: IMAP beside SMTP, EWS, Microsoft Graph.

Each reads the ``mail.inbox`` folder of the account the transport sends with, so no second
configuration is needed, and implements ``hytetu.inbox.MailboxReader``. The IMAP reader is
in ``readers_imap``, the EWS one in ``readers_ews`` and the Graph one in ``readers_graph``;
each is imported only when chosen. Graph keeps its delta link between ticks in a
``DeltaStore``: by default a JSON file in the out folder.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from hytetu.errors import MailboxError

if TYPE_CHECKING:
    from hytetu.inbox import MailboxReader
    from hytetu.mail import MailSettings

#: The file of the default DeltaStore, in the out folder.
DELTA_FILE = "mailbox-delta.json"


class DeltaStore(Protocol):
    """Where a reader keeps its position between ticks (Graph's ``@odata.deltaLink``), per
    mailbox. A database-backed store can be given to ``make`` instead of the file."""

    def get(self, mailbox: str) -> str | None: ...

    def put(self, mailbox: str, value: str | None) -> None: ...


class JsonDeltaStore:
    """``{mailbox: deltaLink}`` in one JSON file, replaced atomically on every change."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def _load(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            raise MailboxError(
                f"{self.path}: not a readable JSON file: {type(e).__name__}"
            ) from None
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def get(self, mailbox: str) -> str | None:
        return self._load().get(mailbox)

    def put(self, mailbox: str, value: str | None) -> None:
        data = self._load()
        if value is None:
            data.pop(mailbox, None)
        else:
            data[mailbox] = value
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.path.parent, prefix=".delta-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, indent=1)
        os.replace(name, self.path)


def make(
    choice: str,
    settings: MailSettings,
    out_dir: Path,
    state: DeltaStore | None = None,
) -> MailboxReader:
    """The reader for transport ``choice`` ("smtp", "ews", "graph") of ``settings``;
    ``state`` keeps Graph's delta link (default: ``out_dir/mailbox-delta.json``)."""
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

        return GraphReader(settings.graph, inbox, state or JsonDeltaStore(out_dir / DELTA_FILE))
    raise MailboxError(f"no mailbox reader for mail.transport {choice!r}")
