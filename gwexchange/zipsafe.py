"""ZIP files from outside (envelope packages, bundles, audit archives) read as hostile input.

``zipfile`` parses a file's whole central directory when it opens it, before any member can be checked: a
directory of millions of entries would cost it minutes and gigabytes. ``_over_bounds`` reads first what the end
records claim (``end_claims``: the member count and the directory's size), so that a reader refuses a file over
its bounds before ``zipfile`` reads anything else. Each reader then checks the members themselves.
"""

from __future__ import annotations

import os
import struct
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

FAULTS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    RuntimeError,
    NotImplementedError,
    EOFError,
    OSError,
    ValueError,
    struct.error,
)
"""What ``zipfile`` raises for a damaged or unsupported file or member (RuntimeError: an encrypted one;
ValueError: a member name flagged UTF-8 that is not, and other malformed fields)."""

ENTRY_BYTES = 160
"""Room for one of our directory entries: 46 bytes, a name of up to 64, a zip64 field of up to 28, some spare."""

# The end records (APPNOTE 4.3.14–4.3.16): the classic one, the zip64 locator before it, the zip64 record.
_END, _END_SIGNATURE = struct.Struct("<4s4H2LH"), b"PK\x05\x06"
_ZIP64_LOCATOR, _ZIP64_LOCATOR_SIGNATURE = struct.Struct("<4sLQL"), b"PK\x06\x07"
_ZIP64_END, _ZIP64_END_SIGNATURE = struct.Struct("<4sQ2H2L4Q"), b"PK\x06\x06"


def _over_bounds(path: Path, max_members: int, max_directory_bytes: int) -> str | None:
    """Why the end records of the ZIP file at ``path`` put it over these bounds, or None (OSError: unreadable)."""
    with path.open("rb") as f:
        members, directory = end_claims(f)
    if members > max_members:
        return f"it claims {members} members (at most {max_members})"
    if directory > max_directory_bytes:
        return f"its central directory is {directory} bytes (at most {max_directory_bytes})"
    return None


def open_checked(
    path: Path,
    *,
    max_members: int,
    max_directory_bytes: int,
    refuse: Callable[[str], Exception],
    unreadable: Callable[[Exception], Exception],
) -> tuple[zipfile.ZipFile, list[zipfile.ZipInfo]]:
    """``path`` opened as a ZIP file of ours, its shape checked before ``zipfile`` reads its index: the end
    records within the bounds, then a leading ``mimetype`` member, at most ``max_members`` members, no name twice
    (``zipfile`` would read the last of them: which one counts must never be a guess). ``refuse(why)`` and
    ``unreadable(error)`` make the reader's own errors. The caller checks its members and closes the file."""
    try:
        too_large = _over_bounds(path, max_members, max_directory_bytes)
    except OSError as e:
        raise unreadable(e) from e
    if too_large:
        raise refuse(too_large)
    try:
        zf = zipfile.ZipFile(path, "r")
    except FAULTS as e:
        raise unreadable(e) from e
    try:
        infos = zf.infolist()
        if not infos or infos[0].filename != "mimetype":
            raise refuse("no leading mimetype member")
        if len(infos) > max_members:
            raise refuse(f"more than {max_members} members")
        names: set[str] = set()
        for info in infos:
            if info.filename in names:
                raise refuse(f"member {info.filename!r} appears twice")
            names.add(info.filename)
    except BaseException:
        zf.close()
        raise
    return zf, infos


def end_claims(f: BinaryIO) -> tuple[int, int]:
    """The member count and directory size (bytes) the end records of a ZIP file claim; (0, 0) if it has none.

    Where the records differ, the largest claim counts, from every place a ``zipfile`` version reads them: the
    end record at the very end and the last one in the comment-sized tail, the zip64 record just before its
    locator and the one the locator points at.
    """
    start = max(0, f.seek(0, os.SEEK_END) - _END.size - 0xFFFF)
    f.seek(start)
    tail = f.read()
    members = directory = 0
    for at in {len(tail) - _END.size, tail.rfind(_END_SIGNATURE)}:
        if at < 0 or at + _END.size > len(tail) or tail[at : at + 4] != _END_SIGNATURE:
            continue
        claims = [_END.unpack_from(tail, at)[4:6], *_zip64_claims(f, start + at)]
        members = max(members, *(n for n, _ in claims))
        directory = max(directory, *(size for _, size in claims))
    return members, directory


def _zip64_claims(f: BinaryIO, end_at: int) -> Iterator[tuple[int, int]]:
    located_at = end_at - _ZIP64_LOCATOR.size
    if located_at < 0:
        return
    f.seek(located_at)
    locator = f.read(_ZIP64_LOCATOR.size)
    if locator[:4] != _ZIP64_LOCATOR_SIGNATURE:
        return
    for at in {located_at - _ZIP64_END.size, _ZIP64_LOCATOR.unpack(locator)[2]}:
        f.seek(max(0, at))
        record = f.read(_ZIP64_END.size)
        if at >= 0 and len(record) == _ZIP64_END.size and record[:4] == _ZIP64_END_SIGNATURE:
            fields = _ZIP64_END.unpack(record)
            yield max(fields[6], fields[7]), fields[8]


__all__ = [
    "ENTRY_BYTES",
    "FAULTS",
    "end_claims",
    "open_checked",
]
