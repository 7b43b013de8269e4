"""Envelope packages for gd.gov.office, opened by its clerk's tool: not a ZIP or truncated, the mimetype missing,
wrong, deflated or damaged, encrypted or unexpected members, names not UTF-8, the envelope or a part missing,
damaged, tampered or truncated, the envelope re-addressed, oversize or expired."""

from __future__ import annotations

import io
import shutil
import zipfile
from collections.abc import Callable
from datetime import timedelta

from gwexchange.envelope.package import write_package
from gwexchange.routing import bundle as bundle_module

from .base import DIGEST_CHANGED, OFFICE
from .exchange_common import DECRYPTION, OUT, Context, Exchange, document
from .exchange_pki import EXCHANGE, FGW
from .exchange_zip import flip_member_data, name_not_utf8, set_central_size, set_encrypted_flag, zip_bytes


def package_attacks(c: Context) -> None:
    """Envelope packages for gd.gov.office, opened by its clerk's tool."""
    ex, add = c.ex, c.add
    folder = OUT / ".package"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "good.gwxp"
    write_package(path, lambda sink: ex.seal(document(attachment=True), parts=_Sink(sink)))
    good = path.read_bytes()
    shutil.rmtree(folder)
    (EXCHANGE / "package.gwxp").write_bytes(good)
    with zipfile.ZipFile(io.BytesIO(good)) as zf:
        stored = [(i.filename, zf.read(i.filename)) for i in zf.infolist()]

    def package(name: str, cls: str, data: bytes, error: str, message: str, description: str) -> None:
        add(name, cls, "package", data, error, message, description)

    def changed(change: Callable[[str, bytes], tuple[str, bytes] | None]) -> bytes:
        out = []
        for n, d in stored:
            new = change(n, d)
            if new is not None:
                out.append(new)
        return zip_bytes(out)

    package(
        "pkg-not-zip.gwxp",
        "package-garbled",
        b"%PDF-1.7 not a package",
        "InputError",
        "is not an envelope package",
        "A PDF named like a package.",
    )
    package(
        "pkg-truncated.gwxp",
        "package-garbled",
        good[: len(good) // 2],
        "InputError",
        "is not an envelope package",
        "The valid package cut in half.",
    )
    package(
        "pkg-no-mimetype.gwxp",
        "package-garbled",
        changed(lambda n, d: None if n == "mimetype" else (n, d)),
        "EnvelopeError",
        "no leading mimetype member",
        "The mimetype member removed.",
    )
    package(
        "pkg-wrong-mimetype.gwxp",
        "package-garbled",
        changed(lambda n, d: (n, bundle_module.MIMETYPE.encode()) if n == "mimetype" else (n, d)),
        "EnvelopeError",
        "wrong mimetype",
        "A bundle's mimetype in a package.",
    )
    package(
        "pkg-deflated.gwxp",
        "package-garbled",
        zip_bytes(stored, compress={"envelope.xml"}),
        "EnvelopeError",
        "is compressed",
        "The envelope member deflated.",
    )
    package(
        "pkg-encrypted-member.gwxp",
        "package-garbled",
        set_encrypted_flag(good, "parts/part-1"),
        "EnvelopeError",
        "is encrypted",
        "A part member flagged as encrypted.",
    )
    package(
        "pkg-unexpected-member.gwxp",
        "package-garbled",
        zip_bytes([*stored, ("../evil.sh", b"#!/bin/sh\n")]),
        "EnvelopeError",
        "unexpected member",
        "A member whose name climbs out of the package.",
    )
    damaged = bytearray(good)
    damaged[0:4] = b"PK\x03\x05"  # the mimetype member's local header: listed by the central directory, unreadable
    package(
        "pkg-mimetype-damaged.gwxp",
        "package-garbled",
        bytes(damaged),
        "EnvelopeError",
        "member mimetype is damaged",
        "The mimetype member's local header garbled (once an AttributeError: the refusal itself failed).",
    )
    package(
        "pkg-name-not-utf8-central.gwxp",
        "invalid-utf8",
        name_not_utf8(good, "envelope.xml", central=True),
        "InputError",
        "is not an envelope package",
        "envelope.xml's name flagged UTF-8 but invalid in the central directory (once a UnicodeDecodeError escaped).",
    )
    package(
        "pkg-name-not-utf8-local.gwxp",
        "invalid-utf8",
        name_not_utf8(good, "envelope.xml", central=False),
        "EnvelopeError",
        "member envelope.xml is damaged",
        "envelope.xml's name flagged UTF-8 but invalid in its local header (once a UnicodeDecodeError escaped).",
    )
    package(
        "pkg-no-envelope.gwxp",
        "package-garbled",
        changed(lambda n, d: None if n == "envelope.xml" else (n, d)),
        "EnvelopeError",
        "has no envelope.xml",
        "The envelope member removed.",
    )
    package(
        "pkg-part-missing.gwxp",
        "package-garbled",
        changed(lambda n, d: None if n == "parts/part-1" else (n, d)),
        "EnvelopeError",
        "lacks the part part-1",
        "The part member removed.",
    )
    package(
        "pkg-part-crc-damaged.gwxp",
        "package-garbled",
        flip_member_data(good, "parts/part-1", 20),
        "EnvelopeError",
        "part part-1 is damaged",
        "One bit of the part flipped, its CRC not.",
    )
    package(
        "pkg-part-tampered.gwxp",
        "package-garbled",
        changed(lambda n, d: (n, d[:20] + bytes([d[20] ^ 1]) + d[21:]) if n == "parts/part-1" else (n, d)),
        "DecryptionError",
        DECRYPTION,
        "One bit of the part flipped (CRC made to match): the GCM tag fails.",
    )
    package(
        "pkg-part-truncated.gwxp",
        "package-garbled",
        changed(lambda n, d: (n, d[:-1]) if n == "parts/part-1" else (n, d)),
        "DecryptionError",
        DECRYPTION,
        "The part one byte short.",
    )
    package(
        "pkg-envelope-readdressed.gwxp",
        "readdressed",
        changed(
            lambda n, d: (
                (n, d.replace(f'code="{OFFICE}"'.encode(), f'code="{FGW}"'.encode(), 1))
                if n == "envelope.xml"
                else (n, d)
            )
        ),
        "SignatureError",
        DIGEST_CHANGED,
        "The package's envelope re-addressed to gd.gov.fgw.",
    )
    package(
        "pkg-envelope-oversize-claimed.gwxp",
        "oversize-depth",
        set_central_size(good, "envelope.xml", 64 * 1024 * 1024 + 1),
        "EnvelopeError",
        "envelope.xml is larger than 67108864 bytes",
        "The central directory claims a 64 MiB + 1 byte envelope.",
    )
    package(
        "pkg-expired.gwxp",
        "replay-expiry",
        _package_of(ex, lifetime=timedelta(hours=1)),
        "EnvelopeError",
        "the envelope expired at 2026-11-20 11:00:00",
        "A package whose envelope expired at 11:00, opened at 12:00.",
    )


class _Sink(dict[str, bytes]):
    """Parts sent both to a package's sink and kept: ``Exchange.seal`` writes into a dict."""

    def __init__(self, sink: Callable[[str, object], None]) -> None:
        super().__init__()
        self._sink = sink

    def __setitem__(self, cid: str, octets: bytes) -> None:
        super().__setitem__(cid, octets)
        self._sink(cid, [octets])


def _package_of(ex: Exchange, *, lifetime: timedelta) -> bytes:
    folder = OUT / ".package"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "p.gwxp"
    write_package(path, lambda sink: ex.seal(document(attachment=True), parts=_Sink(sink), lifetime=lifetime))
    data = path.read_bytes()
    shutil.rmtree(folder)
    return data
