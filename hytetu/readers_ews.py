"""Exchange Web Services mailbox reader (exchangelib), for counties that send through EWS.

The account, credentials and configuration are the EWS transport's (``hytetu.ews``):
the same mailbox, impersonation or delegate access, and redaction of secrets in logs.

- Fetch: ``FindItem`` in the folder (the Inbox, a path below it such as ``INBOX/Hyte``, or
  below the top of the mailbox) with the id, change key, size and categories of each item,
  oldest first; an item over ``MAX_MESSAGE_BYTES`` (``item:Size``) is logged with its id
  and not fetched; the others' MIME by ``GetItem`` (``MimeContent``). Key = the item id.
- Mark handled: ``MoveItem`` to ``handled_folder`` (found with a shallow ``FindFolder``,
  made with ``CreateFolder`` when missing), or ``UpdateItem`` setting ``IsRead`` and the
  handled category. Never ``DeleteItem``.
- Rights: the same as for sending (``full_access_as_app`` with impersonation for OAuth2;
  full access to the mailbox for a service account on premises).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from exchangelib import Folder, Message
from exchangelib.errors import ErrorFolderNotFound
from exchangelib.services import CreateFolder

from hytetu.errors import DeliveryError, MailboxError
from hytetu.ews import EwsTransport
from hytetu.inbox import MAX_MESSAGE_BYTES, MAX_MESSAGES_PER_TICK, IncomingMail

if TYPE_CHECKING:
    from hytetu.inbox import InboxSettings
    from hytetu.transport_settings import EwsSettings

log = logging.getLogger(__name__)


class EwsReader:
    """Reads one folder of one Exchange mailbox."""

    name = "ews"

    def __init__(self, settings: EwsSettings, inbox: InboxSettings) -> None:
        mailbox = inbox.mailbox or settings.sender
        if not mailbox:
            raise MailboxError("set mail.inbox.mailbox (or mail.ews.sender): the mailbox read")
        self.user = mailbox
        self.folder = inbox.folder
        self.handled_folder = inbox.handled_folder
        self.category = inbox.handled_keyword
        self.mailbox = f"ews://{mailbox}/{inbox.folder}"
        self._transport = EwsTransport(settings)
        self._folders: dict[str, Any] = {}
        self._items: dict[str, tuple[str | None, list[str]]] = {}  # id -> changekey, cats

    def close(self) -> None:
        for account in self._transport._accounts.values():
            account.protocol.close()

    def _fail(self, what: str, e: Exception) -> MailboxError:
        if isinstance(e, MailboxError):
            return e
        text = str(e) if isinstance(e, DeliveryError) else str(self._transport._error(e, ""))
        return MailboxError(f"{what} in {self.user}: {text}")

    def _account(self) -> Any:
        try:
            return self._transport.account(self.user)
        except Exception as e:
            raise self._fail("cannot open the mailbox", e) from None

    def _folder(self, path: str, *, create: bool) -> Any:
        if path in self._folders:
            return self._folders[path]
        account = self._account()
        parts = [p for p in path.split("/") if p]
        if parts and parts[0].lower() == "inbox":
            folder, parts = account.inbox, parts[1:]
        else:
            folder = account.msg_folder_root
        for name in parts:
            try:
                folder = folder // name  # a shallow FindFolder on the display name
            except ErrorFolderNotFound:
                if not create:
                    raise MailboxError(
                        f"EWS ({self.user}): no folder {path} (missing: {name})"
                    ) from None
                # CreateFolder itself: Folder.save() would first walk the whole folder tree
                # (a deep FindFolder from the root) to update exchangelib's cache
                (made,) = CreateFolder(account=account).call(
                    parent_folder=folder,
                    folders=[Folder(parent=folder, name=name, folder_class="IPF.Note")],
                )
                if isinstance(made, Exception):
                    raise made from None
                log.info("%s: created the folder %s", self.mailbox, name)
                folder = made
        self._folders[path] = folder
        return folder

    def fetch(self) -> Iterator[IncomingMail]:
        try:
            folder = self._folder(self.folder, create=False)
            found = list(
                folder.all()
                .only("size", "categories", "datetime_received")
                .order_by("datetime_received")
            )
        except Exception as e:
            raise self._fail(f"cannot list {self.folder}", e) from None
        count = 0
        for item in found:
            categories = list(item.categories or [])
            if self.category in categories:
                continue
            if count >= MAX_MESSAGES_PER_TICK:
                return
            self._items[item.id] = (item.changekey, categories)
            if (item.size or 0) > MAX_MESSAGE_BYTES:
                log.warning(
                    "%s: skipped %s: %d bytes is over the limit of %d",
                    self.mailbox,
                    item.id,
                    item.size,
                    MAX_MESSAGE_BYTES,
                )
                continue
            try:
                (full,) = self._account().fetch(
                    ids=[(item.id, item.changekey)], only_fields=["mime_content"]
                )
            except Exception as e:
                raise self._fail(f"cannot fetch {item.id}", e) from None
            if isinstance(full, Exception):
                log.warning("%s: %s is gone: %s", self.mailbox, item.id, full)
                continue
            count += 1
            yield IncomingMail(str(item.id), bytes(full.mime_content or b""))

    def mark_handled(self, key: str) -> None:
        account = self._account()
        changekey, categories = self._items.get(key, (None, []))
        try:
            if self.handled_folder:
                destination = self._folder(self.handled_folder, create=True)
                results = account.bulk_move(ids=[(key, changekey)], to_folder=destination)
            else:
                item = Message(
                    account=account,
                    id=key,
                    changekey=changekey,
                    is_read=True,
                    categories=[*categories, self.category],
                )
                results = account.bulk_update(items=[(item, ["is_read", "categories"])])
        except Exception as e:
            raise self._fail(f"cannot mark {key} handled", e) from None
        failed = [r for r in results if isinstance(r, Exception)]
        if failed:
            raise self._fail(f"cannot mark {key} handled", failed[0])
