"""Opening a person's input file (config YAML, session notes, a form export): every way the
file system can refuse it becomes one located Problem, never an ``OSError`` traceback; and
a file too large, or a workbook that would unpack too far, is refused before it is parsed,
so time and memory stay bounded (``Limits``, ``check_workbook``)."""

from __future__ import annotations

import errno
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from hytetu.errors import Problem

MB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """How large an input may be. ``setting`` says where a person changes them (shown in
    the error); a form export's come from ``feedback.import`` in cycle.yaml."""

    file_bytes: int = 20 * MB
    #: XLSX: all members together, uncompressed, as the zip directory declares them
    #: (Python's zipfile never unpacks a member past its declared size).
    unpacked_bytes: int = 50 * MB
    #: XLSX: uncompressed / compressed size of any member over 1 MB (zip bombs run to 1000).
    ratio: int = 200
    rows: int = 50_000
    #: cells of a sheet, shared strings of a workbook
    cells: int = 1_000_000
    #: The longest single XML token (a comment, a tag, a text) in a workbook: Python's
    #: expat parser, which openpyxl streams sheets with, reparses an unfinished token at
    #: every 16 KB read, so its time grows with the square of a token's length (a 20 MB
    #: comment took 28 s, 400 MB more than 11 minutes). Excel's own cells hold 32,767
    #: characters at most.
    token_bytes: int = 1 * MB
    setting: str = ""

    def hint(self, name: str) -> str:
        return f" ({name} in {self.setting})" if self.setting else ""


def _mb(n: int) -> str:
    return f"{n / MB:.3g} MB"


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


def read_input(
    path: Path, display: str | None = None, limits: Limits | None = None, name: str = ""
) -> bytes:
    """The bytes of ``path``, or ``UnreadableFile`` saying why they cannot be read. With
    ``limits``, a file over ``limits.file_bytes`` is refused unread (``name``: the setting
    that raises the limit), also one with no size of its own (a pipe, /dev/zero)."""
    shown = display or str(path)
    with open_input(path, display) as f:
        try:
            if limits is None:
                return f.read()
            check_size(f, shown, limits, name)
            data = f.read(limits.file_bytes + 1)
        except OSError as e:  # e.g. EIO, or a folder on a system that lets it be opened
            raise UnreadableFile(Problem(shown, None, "", _why(e))) from None
    if len(data) > limits.file_bytes:
        raise UnreadableFile(_too_large(shown, f"more than {_mb(limits.file_bytes)}", limits, name))
    return data


def check_size(handle: BinaryIO, display: str, limits: Limits, name: str = "") -> None:
    """``UnreadableFile`` if the open file is larger than ``limits.file_bytes``."""
    size = os.fstat(handle.fileno()).st_size
    if size > limits.file_bytes:
        raise UnreadableFile(_too_large(display, _mb(size), limits, name))


def _too_large(display: str, size: str, limits: Limits, name: str) -> Problem:
    return Problem(
        display,
        None,
        "",
        f"the file is too large: {size}, the limit is {_mb(limits.file_bytes)}"
        f"{limits.hint(name)}; split it or raise the limit",
    )


_XML_SUFFIXES = (".xml", ".rels", ".vml")


def check_workbook(handle: BinaryIO, display: str, limits: Limits) -> None:
    """Refuse an XLSX before openpyxl opens it: its size, the sizes its zip directory
    declares (in all, per member, and against the compressed size), and in every XML
    member large enough to hold one, a token over ``limits.token_bytes`` or more shared
    strings than ``limits.cells``. Raises ``UnreadableFile``; leaves ``handle`` at 0."""

    def refuse(message: str) -> UnreadableFile:
        return UnreadableFile(Problem(display, None, "", message))

    check_size(handle, display, limits, "max_file_mb")
    try:
        archive = zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise refuse(f"not an XLSX workbook ({type(e).__name__})") from None
    with archive:
        members = archive.infolist()
        if len(members) > 10_000:
            raise refuse(f"not an XLSX workbook: {len(members)} parts in the zip")
        total = 0
        for m in members:
            if m.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise refuse(
                    f"not an XLSX workbook: part {m.filename!r} is compressed with method "
                    f"{m.compress_type}, Excel uses only deflate"
                )
            total += m.file_size
            ratio = m.file_size / max(m.compress_size, 1)
            if m.file_size > MB and ratio > limits.ratio:
                raise refuse(
                    f"part {m.filename!r} would unpack {ratio:.0f} times its size in the file "
                    f"(to {_mb(m.file_size)}; the limit is {limits.ratio} times): a zip bomb, "
                    "not an export; refused unopened"
                )
            if total > limits.unpacked_bytes:
                raise refuse(
                    f"the workbook would unpack to more than {_mb(limits.unpacked_bytes)} "
                    f"(at part {m.filename!r}, {_mb(total)} so far; the limit is "
                    f"{_mb(limits.unpacked_bytes)}{limits.hint('max_unpacked_mb')}); "
                    "refused unopened"
                )
        for m in members:
            if m.file_size > limits.token_bytes and m.filename.lower().endswith(_XML_SUFFIXES):
                problem = _scan_xml(archive, m, limits)
                if problem:
                    raise refuse(f"part {m.filename!r}: {problem}; refused unparsed")
    handle.seek(0)


def _scan_xml(archive: zipfile.ZipFile, member: zipfile.ZipInfo, limits: Limits) -> str | None:
    """What makes ``member`` unsafe to stream through expat, or None. lxml (libxml2)
    parses in linear time, holding one element at a time, and resolves no entities."""
    from lxml import etree

    longest = limits.token_bytes // 4  # characters: a UTF-8 character is at most 4 bytes
    strings = 0
    try:
        with archive.open(member) as stream:
            events = etree.iterparse(
                stream,
                events=("end", "comment", "pi"),
                resolve_entities=False,
                no_network=True,
                load_dtd=False,
                huge_tree=False,
            )
            for event, el in events:
                if event != "end":
                    if len(el.text or "") > longest:
                        return f"an XML {event} of {len(el.text)} characters"
                    continue
                if len(el.text or "") > longest or len(el.tail or "") > longest:
                    return f"an XML text of more than {longest} characters"
                if any(len(v) > longest for v in el.attrib.values()):
                    return f"an XML attribute of more than {longest} characters"
                if isinstance(el.tag, str) and el.tag.endswith("}si"):
                    strings += 1
                    if strings > limits.cells:
                        return f"more than {limits.cells} shared strings"
                parent = el.getparent()
                el.clear(keep_tail=False)
                if parent is not None:
                    while el.getprevious() is not None:
                        del parent[0]
    except (etree.XMLSyntaxError, zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        return f"not well-formed XML ({str(e)[:160]})"
    return None


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
