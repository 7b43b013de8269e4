"""What the end records of a ZIP file claim, read before ``zipfile`` parses its directory (``gwexchange.zipsafe``)."""

from __future__ import annotations

import io
import struct
import zipfile

import pytest

from gwexchange.zipsafe import end_claims

MEMBERS = {f"parts/part-{n}": bytes([n]) * (100 * n) for n in range(1, 6)}


def _zip(**options: object) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, **options) as zf:  # type: ignore[arg-type]
        for name, data in MEMBERS.items():
            zf.writestr(zipfile.ZipInfo(name), data)
    return out.getvalue()


def _directory_size(data: bytes) -> int:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return len(data) - 22 - zf.start_dir - (56 + 20 if b"PK\x06\x06" in data[-120:] else 0)


def test_a_plain_zip_claims_what_it_holds() -> None:
    data = _zip()
    assert end_claims(io.BytesIO(data)) == (len(MEMBERS), _directory_size(data))


def test_an_end_record_in_the_comment_counts_too_as_zipfile_would_read_it() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr(zipfile.ZipInfo("a"), b"x")
        zf.comment = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 50_000, 50_000, 10**6, 0, 0) + b"c" * 1000
    assert end_claims(io.BytesIO(out.getvalue())) == (50_000, 10**6)


def test_zip64_end_records_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 64)  # zipfile writes zip64 end records past this offset
    data = _zip(allowZip64=True)
    assert b"PK\x06\x06" in data[-120:]
    assert end_claims(io.BytesIO(data)) == (len(MEMBERS), _directory_size(data))


def test_every_record_zipfile_may_read_counts_and_the_largest_claim_wins() -> None:
    data = _zip()
    body, end = data[:-22], data[-22:]

    def zip64(members: int, size: int) -> bytes:
        return struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, members, members, size, 0)

    # one zip64 record where older zipfile versions look (before the locator), another where it points
    elsewhere = len(body)
    forged = body + zip64(10**9, 10) + zip64(3, 10**12)
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, elsewhere, 1)
    assert end_claims(io.BytesIO(forged + locator + end)) == (10**9, 10**12)


@pytest.mark.parametrize(
    "data",
    [b"", b"PK", b"not a zip at all" * 100, b"x" * 100 + b"PK\x05\x06\x00\x00"],
    ids=["empty", "two-bytes", "text", "cut-end-record"],
)
def test_no_end_record_claims_nothing(data: bytes) -> None:
    assert end_claims(io.BytesIO(data)) == (0, 0)
