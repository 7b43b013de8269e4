"""ZIP archives written and damaged byte by byte, for the bundles and packages (``zipfile`` refuses to write most
of these)."""

from __future__ import annotations

import io
import struct
import warnings
import zipfile


def zip_bytes(members: list[tuple[str, bytes]], *, compress: set[str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names, on purpose
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:
            for name, data in members:
                method = zipfile.ZIP_DEFLATED if compress and name in compress else zipfile.ZIP_STORED
                zf.writestr(zipfile.ZipInfo(name), data, compress_type=method)
    return buffer.getvalue()


def set_encrypted_flag(data: bytes, member: str) -> bytes:
    """Set bit 0 (encrypted) of ``member``'s general-purpose flags in its local and central headers."""
    out = bytearray(data)
    name = member.encode()
    for signature, flag_at, name_at in ((b"PK\x03\x04", 6, 30), (b"PK\x01\x02", 8, 46)):
        start = 0
        while (at := out.find(signature, start)) >= 0:
            length = struct.unpack_from("<H", out, at + (26 if signature == b"PK\x03\x04" else 28))[0]
            if out[at + name_at : at + name_at + length] == name:
                out[at + flag_at] |= 0x01
            start = at + 4
    return bytes(out)


def set_central_size(data: bytes, member: str, size: int) -> bytes:
    """Claim ``size`` as ``member``'s size, stored and uncompressed, in the central directory (the data stays)."""
    out = bytearray(data)
    name = member.encode()
    start = 0
    while (at := out.find(b"PK\x01\x02", start)) >= 0:
        length = struct.unpack_from("<H", out, at + 28)[0]
        if out[at + 46 : at + 46 + length] == name:
            struct.pack_into("<II", out, at + 20, size, size)
        start = at + 4
    return bytes(out)


def flip_member_data(data: bytes, member: str, offset: int) -> bytes:
    """Flip one bit of ``member``'s stored data (its CRC left as it was)."""
    out = bytearray(data)
    at = out.find(b"PK\x03\x04" + b"")
    while at >= 0:
        name_length, extra_length = struct.unpack_from("<HH", out, at + 26)
        if out[at + 30 : at + 30 + name_length] == member.encode():
            out[at + 30 + name_length + extra_length + offset] ^= 0x01
            return bytes(out)
        at = out.find(b"PK\x03\x04", at + 4)
    raise AssertionError(member)


def name_not_utf8(data: bytes, member: str, *, central: bool) -> bytes:
    """Flag ``member``'s name as UTF-8 (bit 11) and make its first byte 0xFF, in the central directory or in its
    local header."""
    out = bytearray(data)
    signature, flags, name_at, length_at = (b"PK\x01\x02", 8, 46, 28) if central else (b"PK\x03\x04", 6, 30, 26)
    at = out.find(signature)
    while at >= 0:
        length = struct.unpack_from("<H", out, at + length_at)[0]
        if out[at + name_at : at + name_at + length] == member.encode():
            out[at + flags + 1] |= 0x08
            out[at + name_at] = 0xFF
            return bytes(out)
        at = out.find(signature, at + 4)
    raise AssertionError(member)
