"""Opening a person's input file (config YAML, session notes, a form export): every way the
file system can refuse it becomes one located Problem, never an ``OSError`` traceback."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import BinaryIO

from hytetu.errors import Problem


class UnreadableFile(Exception):
    """Internal: the loaders catch it and raise their own error (ConfigError, NotesError,
    FeedbackImportError) with ``problem`` in it."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def open_input(path: Path, display: str | None = None) -> BinaryIO:
    """``path`` opened for reading in binary mode, or ``UnreadableFile`` saying why not."""
    name = display or str(path)
    try:
        handle = Path(path).open("rb")  # noqa: SIM115 - the caller closes it
    except OSError as e:
        raise UnreadableFile(Problem(name, None, "", _why(e))) from None
    return handle


def read_input(path: Path, display: str | None = None) -> bytes:
    """The bytes of ``path``, or ``UnreadableFile`` saying why they cannot be read."""
    with open_input(path, display) as f:
        try:
            return f.read()
        except OSError as e:  # e.g. EIO, or a folder on a system that lets it be opened
            raise UnreadableFile(Problem(display or str(path), None, "", _why(e))) from None


def wrong_type(path: Path, display: str | None, suffixes: tuple[str, ...]) -> Problem | None:
    """A Problem when ``path``'s name does not end in one of ``suffixes``."""
    suffix = Path(path).suffix.lower()
    if suffix in suffixes:
        return None
    shown = repr(suffix) if suffix else "no extension"
    return Problem(
        display or str(path), None, "", f"unknown file type ({shown}): use {' or '.join(suffixes)}"
    )


def _why(e: OSError) -> str:
    if e.errno == errno.ENOENT:
        return "file not found"
    if e.errno == errno.EISDIR:
        return "cannot read the file: Is a directory"
    if e.errno == errno.ENOTDIR:
        return "file not found (a part of the path is a file, not a folder)"
    return f"cannot read the file: {e.strerror or e}"
