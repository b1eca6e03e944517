"""The one exception tree of hytetu.

    HytetuError
    ├── ConfigError        a config folder is invalid; carries every Problem found
    ├── NotesError         a session-notes file is invalid; carries every Problem found
    ├── FeedbackImportError  a feedback export (CSV/XLSX) is invalid; carries every Problem
    ├── IndicatorError     an indicator file (Sotkanet JSON, HYTE coefficient) is invalid,
    │                      or fetching it failed; carries every Problem found
    ├── StateError         an operation does not fit the cycle's state (e.g. dispatch of an
    │                      unapproved memo)
    ├── DeliveryError      a transport could not deliver a message (recipient, attempt,
    │                      permanent)
    └── MailboxError       the county's mailbox could not be read or a message not marked
                           handled (the server, the login, the folder; never the password)

Each error carries its context as keyword arguments. Only the CLI edge turns them into exit
codes and messages.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or suspicious) in an input file, located for a person to fix."""

    file: str
    line: int | None
    field: str
    message: str
    severity: str = "error"  # "error" | "warning"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"


class HytetuError(Exception):
    """Base of every error hytetu raises on purpose."""


class _ProblemsError(HytetuError):
    def __init__(self, message: str, *, problems: list[Problem]) -> None:
        super().__init__(message)
        self.problems = problems

    def __str__(self) -> str:
        lines = [self.args[0]] + [f"  {p}" for p in self.problems]
        return "\n".join(lines)


class ConfigError(_ProblemsError):
    """The configuration folder has errors; nothing was written."""


class NotesError(_ProblemsError):
    """A session-notes file has errors; nothing was written."""


class FeedbackImportError(_ProblemsError):
    """A feedback export has errors (row and column in each Problem); nothing was imported."""


class IndicatorError(_ProblemsError):
    """An indicator file (Sotkanet JSON, HYTE coefficient CSV/XLSX) has errors, or Sotkanet
    could not be fetched; nothing was written."""


class StateError(HytetuError):
    """The cycle is not in a state that allows the operation."""


class DeliveryError(HytetuError):
    """A message could not be delivered. ``permanent`` errors are not retried."""

    def __init__(
        self, message: str, *, recipient: str = "", attempt: int = 1, permanent: bool = False
    ) -> None:
        super().__init__(message)
        self.recipient = recipient
        self.attempt = attempt
        self.permanent = permanent


class MailboxError(HytetuError):
    """Reading the county's mailbox failed: the server is down, the login or the folder is
    wrong, or the server refused to mark a message handled. The text names the server and
    the account, never the password or a token."""

    def __init__(self, message: str, *, mailbox: str = "") -> None:
        super().__init__(message)
        self.mailbox = mailbox
