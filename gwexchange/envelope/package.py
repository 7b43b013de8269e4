"""The envelope package on disk and on removable media: one ZIP file, after the ASiC containers of ETSI.

    mimetype            "application/vnd.gwexchange.envelope+zip", stored first, so ``file`` can tell
    envelope.xml        the signed envelope (gwexchange/schemas/envelope.xsd)
    parts/part-1 …      the encrypted attachments, one member each

Every member is stored, never compressed: encrypted parts do not compress, and reading never inflates anything
(no decompression bombs). Parts are streamed in and out, so their size does not bound memory.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from gwexchange import zipsafe
from gwexchange.envelope.sealing import MAX_ENVELOPE_BYTES, PartSink, Sealed
from gwexchange.errors import EnvelopeError, InputError
from gwexchange.files import atomic_file

MIMETYPE = "application/vnd.gwexchange.envelope+zip"
ENVELOPE_MEMBER = "envelope.xml"
_PART_MEMBER = re.compile(r"parts/(part-[1-9][0-9]*)")
MAX_MEMBERS = 10_000
MAX_CENTRAL_DIRECTORY = MAX_MEMBERS * zipsafe.ENTRY_BYTES  # the ZIP index, not a signed directory
CHUNK = 1024 * 1024


def write_package(path: Path, build: Callable[[PartSink], Sealed]) -> Sealed:
    """Write a package: ``build`` seals the envelope, streaming its parts into the sink given to it.

    The file appears complete or not at all (written beside, then renamed).
    """
    with atomic_file(path) as out, zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        zf.writestr(zipfile.ZipInfo("mimetype"), MIMETYPE)

        def sink(cid: str, octets: Iterable[bytes]) -> None:
            with zf.open(zipfile.ZipInfo(f"parts/{cid}"), "w", force_zip64=True) as member:
                for chunk in octets:
                    member.write(chunk)

        sealed = build(sink)
        zf.writestr(zipfile.ZipInfo(ENVELOPE_MEMBER), sealed.envelope_xml)
    return sealed


class Package:
    """A package opened for reading. Use as a context manager."""

    def __init__(self, path: Path) -> None:
        self.path = path  # before anything can fail: the error messages name it
        self._zip, infos = zipsafe.open_checked(
            path,
            max_members=MAX_MEMBERS,
            max_directory_bytes=MAX_CENTRAL_DIRECTORY,
            refuse=lambda why: EnvelopeError(f"{path} is refused as an envelope package: {why}"),
            unreadable=lambda e: InputError(f"{path} is not an envelope package: {e}"),
        )
        try:
            self._check(infos)
        except BaseException:
            self._zip.close()
            raise

    def _check(self, infos: list[zipfile.ZipInfo]) -> None:
        path = self.path
        for info in infos:
            if info.flag_bits & 0x1:
                raise EnvelopeError(f"{path}: member {info.filename} is encrypted; packages store members as-is")
            if info.compress_type != zipfile.ZIP_STORED:
                raise EnvelopeError(f"{path}: member {info.filename} is compressed; packages store members as-is")
            if info.filename not in ("mimetype", ENVELOPE_MEMBER) and not _PART_MEMBER.fullmatch(info.filename):
                raise EnvelopeError(f"{path}: unexpected member {info.filename!r}")
        if self._read("mimetype") != MIMETYPE.encode("ascii"):
            raise EnvelopeError(f"{path} is not a gwexchange envelope package (wrong mimetype)")

    def __enter__(self) -> Package:
        return self

    def __exit__(self, *exc: object) -> None:
        self._zip.close()

    def envelope_xml(self) -> bytes:
        try:
            info = self._zip.getinfo(ENVELOPE_MEMBER)
        except KeyError as e:
            raise EnvelopeError(f"{self.path} has no envelope.xml") from e
        if info.file_size > MAX_ENVELOPE_BYTES:
            raise EnvelopeError(f"{self.path}: envelope.xml is larger than {MAX_ENVELOPE_BYTES} bytes")
        return self._read(ENVELOPE_MEMBER)

    def _read(self, name: str) -> bytes:
        try:
            return self._zip.read(name)
        except zipsafe.FAULTS as e:  # a CRC mismatch or a damaged header: the package was altered on the way
            raise EnvelopeError(f"{self.path}: member {name} is damaged ({e})") from e

    def part(self, cid: str) -> Iterator[bytes]:
        """The octets of one part, in chunks."""
        try:
            member = self._zip.open(f"parts/{cid}")
        except KeyError as e:
            raise EnvelopeError(f"{self.path} lacks the part {cid}") from e
        except zipsafe.FAULTS as e:
            raise EnvelopeError(f"{self.path}: part {cid} is damaged ({e})") from e
        with member:
            try:
                while chunk := member.read(CHUNK):
                    yield chunk
            except zipsafe.FAULTS as e:  # a CRC mismatch: the part was damaged on the way
                raise EnvelopeError(f"{self.path}: part {cid} is damaged ({e})") from e


def is_package(data_head: bytes) -> bool:
    """Whether the first bytes of a file look like a package (a ZIP whose first member is the mimetype)."""
    return data_head.startswith(b"PK\x03\x04") and b"mimetype" in data_head[:64]


__all__ = [
    "CHUNK",
    "ENVELOPE_MEMBER",
    "MAX_CENTRAL_DIRECTORY",
    "MAX_MEMBERS",
    "MIMETYPE",
    "Package",
    "is_package",
    "write_package",
]
