"""Microsoft Graph mailbox reader, for counties that send through Graph.

Uses the Graph transport's app-only token, throttling and retries (``hytetu.graph``).

- Fetch: ``GET /users/{mailbox}/mailFolders/{folder}/messages/delta?$select=...``,
  following ``@odata.nextLink``; the ``@odata.deltaLink`` of the last page is kept in the
  ``DeltaStore`` only once every message of the round was handed to the caller, so the next
  tick asks only for what changed. A delta link Graph no longer knows (410
  ``SyncStateNotFound``) is dropped and the folder read again from the start (messages
  already handled are skipped by their category, or by the caller's database).
  The MIME of each message: ``GET /users/{mailbox}/messages/{id}/$value``, streamed and
  abandoned once past ``MAX_MESSAGE_BYTES`` (logged with the id).
- Mark handled: ``POST /messages/{id}/move`` to ``handled_folder`` (created with
  ``POST /mailFolders`` when missing), or ``PATCH`` ``isRead`` and the handled category.
- Permissions (application, limited to the one mailbox by an application access policy
  or RBAC for Applications): ``Mail.Read`` to read; ``Mail.ReadWrite`` to mark handled
  (move, category, read flag).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from hytetu.errors import DeliveryError, MailboxError
from hytetu.graph import GraphTransport, TooLarge, odata_string
from hytetu.inbox import MAX_MESSAGE_BYTES, MAX_MESSAGES_PER_TICK, IncomingMail
from hytetu.transport_settings import GraphSettings

if TYPE_CHECKING:
    import httpx

    from hytetu.inbox import InboxSettings
    from hytetu.readers import DeltaStore

log = logging.getLogger(__name__)

SELECT = "id,internetMessageId,receivedDateTime,categories,isRead"
_GONE = frozenset({410})
_DENIED = "needs the application permission {what} on the mailbox {mailbox}"


class GraphReader:
    """Reads one folder of one mailbox through Microsoft Graph."""

    name = "graph"

    def __init__(
        self,
        settings: GraphSettings,
        inbox: InboxSettings,
        state: DeltaStore,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        mailbox = inbox.mailbox or settings.sender
        if not mailbox:
            raise MailboxError("set mail.inbox.mailbox (or mail.graph.sender): the mailbox read")
        self.user = mailbox
        self.folder = inbox.folder
        self.handled_folder = inbox.handled_folder
        self.category = inbox.handled_keyword
        self.state = state
        self.mailbox = f"graph://{mailbox}/{inbox.folder}"
        self._graph = GraphTransport(settings, sleep=sleep)
        self._folder_ids: dict[str, str] = {}
        self._categories: dict[str, list[str]] = {}

    def close(self) -> None:
        self._graph.close()

    # --- requests ----------------------------------------------------------------------

    def _url(self, rest: str) -> str:
        return self._graph._url(self.user, rest)

    def _call(self, method: str, url: str, what: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._graph._request(method, url, **kwargs)
        except DeliveryError as e:
            text = str(e)
            if " 403 " in text or "ErrorAccessDenied" in text:
                need = "Mail.Read" if method == "GET" else "Mail.ReadWrite"
                text += "; " + _DENIED.format(what=need, mailbox=self.user)
            raise MailboxError(f"Graph ({self.user}): {what}: {text}") from None
        assert response is not None  # no ``landed``: never None
        return response

    def _json(self, response: httpx.Response, what: str) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            raise MailboxError(f"Graph ({self.user}): {what}: the answer is not JSON") from None
        if not isinstance(data, dict):
            raise MailboxError(f"Graph ({self.user}): {what}: the answer is not an object")
        return data

    # --- folders -----------------------------------------------------------------------

    def _folder_id(self, path: str, *, create: bool) -> str:
        """The id of a folder given as ``INBOX``, ``INBOX/Sub`` or ``Top/Sub`` (below the
        top of the mailbox), each missing level created when ``create``."""
        if path in self._folder_ids:
            return self._folder_ids[path]
        parts = [p for p in path.split("/") if p]
        parent: str | None = None
        if parts and parts[0].lower() == "inbox":
            parent, parts = "inbox", parts[1:]  # the well-known name, in any language
        for name in parts:
            listing = f"mailFolders/{parent}/childFolders" if parent else "mailFolders"
            query = "$filter=" + quote(f"displayName eq {odata_string(name)}", safe="")
            found = (
                self._json(
                    self._call("GET", self._url(f"{listing}?{query}"), f"folder {name}"),
                    f"folder {name}",
                ).get("value")
                or []
            )
            if found:
                parent = str(found[0]["id"])
                continue
            if not create:
                raise MailboxError(f"Graph ({self.user}): no folder {path} (missing: {name})")
            body = json.dumps({"displayName": name, "isHidden": False}).encode()
            made = self._call(
                "POST",
                self._url(listing),
                f"create the folder {name}",
                content=body,
                content_type="application/json",
            )
            parent = str(self._json(made, f"create the folder {name}")["id"])
            log.info("%s: created the folder %s", self.mailbox, name)
        self._folder_ids[path] = parent or "inbox"
        return self._folder_ids[path]

    # --- the reader --------------------------------------------------------------------

    def _first_url(self) -> str:
        folder = self._folder_id(self.folder, create=False)
        return self._url(f"mailFolders/{quote(folder, safe='')}/messages/delta?$select={SELECT}")

    def fetch(self) -> Iterator[IncomingMail]:
        url = self.state.get(self.mailbox) or self._first_url()
        resynced, count = False, 0
        while True:
            response = self._call("GET", url, "delta", passthrough=_GONE)
            if response.status_code == 410:
                if resynced:
                    raise MailboxError(f"Graph ({self.user}): delta: 410 twice in a row")
                log.warning(
                    "%s: Graph no longer knows the delta link (410); reading the folder again",
                    self.mailbox,
                )
                self.state.put(self.mailbox, None)
                url, resynced = self._first_url(), True
                continue
            page = self._json(response, "delta")
            for item in page.get("value") or []:
                if "@removed" in item or not item.get("id"):
                    continue  # moved away or deleted since the last round
                categories = [str(c) for c in item.get("categories") or []]
                if self.category in categories:
                    continue  # handled already (marked by category)
                if count >= MAX_MESSAGES_PER_TICK:
                    return  # the delta link is not kept: the rest come next tick
                message_id = str(item["id"])
                self._categories[message_id] = categories
                raw = self._raw(message_id)
                if raw is not None:
                    count += 1
                    yield IncomingMail(message_id, raw)
            next_link = page.get("@odata.nextLink")
            if next_link:
                url = str(next_link)
                continue
            delta_link = page.get("@odata.deltaLink")
            if delta_link:
                self.state.put(self.mailbox, str(delta_link))
            return

    def _raw(self, message_id: str) -> bytes | None:
        url = self._url(f"messages/{quote(message_id, safe='')}/$value")
        try:
            return self._call(
                "GET", url, f"MIME of {message_id}", max_bytes=MAX_MESSAGE_BYTES
            ).content
        except TooLarge as e:
            log.warning(
                "%s: skipped %s: %d bytes is over the limit of %d",
                self.mailbox,
                message_id,
                e.size,
                MAX_MESSAGE_BYTES,
            )
            return None

    def mark_handled(self, key: str) -> None:
        message = self._url(f"messages/{quote(key, safe='')}")
        if self.handled_folder:
            destination = self._folder_id(self.handled_folder, create=True)
            body = json.dumps({"destinationId": destination}).encode()
            self._call(
                "POST",
                f"{message}/move",
                f"move {key} to {self.handled_folder}",
                content=body,
                content_type="application/json",
            )
            return
        categories = self._categories.get(key, [])
        patch = {"isRead": True, "categories": [*categories, self.category]}
        self._call(
            "PATCH",
            message,
            f"mark {key} handled",
            content=json.dumps(patch).encode(),
            content_type="application/json",
        )
