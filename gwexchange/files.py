"""Files, safely: durable atomic writes, new files that never follow links or overwrite, reading in chunks."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from gwexchange.errors import ConfigError, InputError

CHUNK = 1024 * 1024


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A file to write that replaces ``path`` durably when the block ends without error, and leaves nothing when
    it raises: a reader sees the old file or the new one, never half of one, and after a crash the new one if the
    block ended. The scratch file beside ``path`` is made exclusively (never a link someone planted there) and is
    mode 0600, like every file gwx writes; it reaches the disk, takes the name, and the folder is synced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "w+b") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    sync_folder(path.parent)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` durably (``atomic_file``)."""
    with atomic_file(path) as f:
        f.write(data)


def write_new(path: Path, chunks: Iterable[bytes]) -> None:
    """Publish a new private file (0600) whole or not at all, never in place of anything.

    The bytes go to a scratch file made exclusively beside ``path`` and reach the disk; only then does the file
    take its name, and only if nothing holds it: an existing file or a symbolic link planted there is neither
    replaced nor followed. If ``chunks`` raises (an attachment whose digest does not match), nothing is left.
    """
    folder = path.parent
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        _take_name(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    sync_folder(folder)


def _take_name(tmp: str, path: Path) -> None:
    try:
        try:
            os.link(tmp, path, follow_symlinks=False)
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            # No hard links here (a FAT stick): claim the name exclusively, then put the file over our own claim.
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))
            os.replace(tmp, path)
    except FileExistsError:
        raise InputError(f"{path} already exists: gwx never overwrites a file; write to an empty folder") from None


def sync_folder(folder: Path) -> None:
    """Make a rename or a new name in ``folder`` survive a power cut (the file's own fsync does not)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


def measure_file(path: Path) -> tuple[int, str]:
    """Size and SHA-256 (hex) of a file, read in chunks so any size fits in memory."""
    h = hashlib.sha256()
    size = 0
    for chunk in read_chunks(path):
        h.update(chunk)
        size += len(chunk)
    return size, h.hexdigest()


def read_file(path: Path, what: str = "file") -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read {what} {path}: {e.strerror or e}") from e


__all__ = [
    "CHUNK",
    "atomic_file",
    "atomic_write",
    "measure_file",
    "read_chunks",
    "read_file",
    "sync_folder",
    "write_new",
]
