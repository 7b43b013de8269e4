"""The message between nodes: one envelope copy as MIME, written by ``encode_message`` and read line by line.

The format (one SMTP message per envelope copy)
    Envelope sender and recipient are node addresses, ``<node-id>@gwexchange.invalid`` (``.invalid`` is reserved:
    they never leak into real mail). The message is ``multipart/mixed``, every body part ``base64``-encoded in
    lines of 76 characters, so no relay needs 8BITMIME and none re-encodes anything::

        From: <gd-hub@gwexchange.invalid>
        To: <sz-hub@gwexchange.invalid>
        Date: …
        Message-ID: <random@gd-hub.gwexchange.invalid>          one per transmission
        Subject: gwexchange envelope 6f1c…
        X-Gwexchange-Message-Id: 6f1c…                           the envelope's message id (its header's MessageId)
        MIME-Version: 1.0
        Content-Type: multipart/mixed; boundary="=_gwx_…"

        --=_gwx_…
        Content-Type: application/vnd.gwexchange.envelope+xml    exactly one, first: the node-signed envelope XML
        Content-Transfer-Encoding: base64
        --=_gwx_…
        Content-Type: application/vnd.gwexchange.tree-head+xml   optional, second: the sending node's latest
        Content-Transfer-Encoding: base64                        signed tree head (archive.treehead), which the
        --=_gwx_…                                                receiver keeps as evidence of that node's log
        Content-Type: application/vnd.gwexchange.directory+xml   optional, next: the signed directory the sender
        Content-Transfer-Encoding: base64                        holds (once per peer and serial), which the
        --=_gwx_…                                                receiver takes if it is newer (see node.py)
        Content-Type: application/octet-stream                   one per encrypted attachment part
        Content-Transfer-Encoding: base64
        Content-ID: <part-1>                                     the part's cid in the envelope (part-N)
        Content-Disposition: attachment; filename="part-1"
        --=_gwx_…--

Reading it (``MessageReader``)
    The reader takes the message one line at a time, as SMTP's DATA delivers it, and keeps only what it decoded:
    the raw message is never held whole, and no line, header block or part is parsed as a tree. Memory and time go
    by the bytes of the envelope and its parts, never by a message's shape: a message of millions of empty lines,
    millions of empty parts or parts nested thousands deep is refused at the line that shows it is not ours.
    Header blocks are bounded (lines and bytes) and parsed by ``email``'s header parser, so a relay's folded or added
    header lines (Received, …) are read as any mail reader would; the bodies are ours: no other parts, no nesting,
    strict base64 decoded line by line, unique cids. If a byte of a body changed, the node signature over the
    envelope (part sizes and SHA-256 included) says so downstream.
"""

from __future__ import annotations

import base64
import binascii
import email.parser
import email.policy
import email.utils
import io
import re
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from email.message import Message
from enum import Enum, auto

from gwexchange import xmlsafe
from gwexchange.codes import is_message_id, is_node_id
from gwexchange.envelope.header import eq
from gwexchange.envelope.sealing import MAX_ENVELOPE_BYTES
from gwexchange.errors import ConfigError, EnvelopeError, GwxError, InputError

DOMAIN = "gwexchange.invalid"
ENVELOPE_MEDIA_TYPE = "application/vnd.gwexchange.envelope+xml"
PART_MEDIA_TYPE = "application/octet-stream"
TREE_HEAD_MEDIA_TYPE = "application/vnd.gwexchange.tree-head+xml"
DIRECTORY_MEDIA_TYPE = "application/vnd.gwexchange.directory+xml"
MAX_TREE_HEAD_BYTES = 64 * 1024
MAX_PARTS = 10_000
MAX_HEADER_LINES = 200
"""Lines in one header block: ours has eight, a relay adds a few Received lines."""
MAX_HEADER_BYTES = 32 * 1024
_MIN_BYTES_PER_LINE = 40
"""Base64 lines are 78 bytes with CRLF: a message of many more, shorter lines (empty ones) is not ours."""
_FREE_LINES = 1000
"""Short lines any message may have (headers, boundaries, the last line of each part) before the ratio counts."""

_CID = re.compile(r"part-[1-9][0-9]{0,8}")
_MULTIPART = re.compile(rb"content-type:[ \t]*multipart/", re.IGNORECASE)
_WHITESPACE = b" \t\r\n"


def node_address(node_id: str) -> str:
    """The SMTP address of a node: ``<node-id>@gwexchange.invalid``."""
    if not is_node_id(node_id):
        raise ConfigError(f"node id {node_id!r} is not valid (like gd-hub: lower-case letters, digits and '-')")
    return f"{node_id}@{DOMAIN}"


def node_of_address(address: str) -> str | None:
    """The node id an SMTP address names, or None if it is not a node address."""
    local, at, domain = address.strip().strip("<>").rpartition("@")
    if not at or domain.lower() != DOMAIN or not is_node_id(local):
        return None
    return local


# --- writing -------------------------------------------------------------------------------------------------


def _base64_lines(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def encode_message(
    sender: str,
    recipient: str,
    envelope_xml: bytes,
    parts: Mapping[str, bytes],
    *,
    message_id: str,
    tree_head: bytes | None = None,
    directory: bytes | None = None,
) -> bytes:
    """The MIME message carrying one envelope copy from node ``sender`` to node ``recipient`` (see above)."""
    for cid in parts:
        if not _CID.fullmatch(cid):
            raise InputError(f"part id {cid!r} is not of the form part-N")
    if len(parts) > MAX_PARTS:
        raise InputError(f"an envelope has at most {MAX_PARTS} parts")
    if not is_message_id(message_id):
        raise InputError(f"message id {message_id!r} is not a lower-case UUID")
    boundary = f"=_gwx_{secrets.token_hex(16)}"  # "_" never occurs in base64: no body line can look like it
    head = (
        f"From: <{node_address(sender)}>\r\n"
        f"To: <{node_address(recipient)}>\r\n"
        f"Date: {email.utils.formatdate(usegmt=True)}\r\n"
        f"Message-ID: <{secrets.token_hex(16)}@{sender}.{DOMAIN}>\r\n"
        f"Subject: gwexchange envelope {message_id}\r\n"
        f"X-Gwexchange-Message-Id: {message_id}\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n'
        "\r\n"
    )
    chunks = [head.encode("ascii")]
    bodies: list[tuple[str, bytes]] = [(f"Content-Type: {ENVELOPE_MEDIA_TYPE}\r\n", envelope_xml)]
    if tree_head is not None:
        bodies.append((f"Content-Type: {TREE_HEAD_MEDIA_TYPE}\r\n", tree_head))
    if directory is not None:
        bodies.append((f"Content-Type: {DIRECTORY_MEDIA_TYPE}\r\n", directory))
    for cid, octets in parts.items():
        headers = (
            f"Content-Type: {PART_MEDIA_TYPE}\r\nContent-ID: <{cid}>\r\n"
            f'Content-Disposition: attachment; filename="{cid}"\r\n'
        )
        bodies.append((headers, octets))
    for headers, octets in bodies:
        chunks.append(f"--{boundary}\r\n{headers}Content-Transfer-Encoding: base64\r\n\r\n".encode("ascii"))
        chunks.append(_base64_lines(octets))
    chunks.append(f"--{boundary}--\r\n".encode("ascii"))
    return b"".join(chunks)


# --- reading -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    message_id: str | None  # the X-Gwexchange-Message-Id header, unverified
    envelope_xml: bytes
    parts: dict[str, bytes]
    tree_head: bytes | None = None  # the sending node's latest signed tree head (XML), unverified
    directory: bytes | None = None  # the signed directory the sending node holds, unverified


class _At(Enum):
    HEADERS = auto()  # the message's header block
    PREAMBLE = auto()  # before the first boundary: ignored
    PART_HEADERS = auto()
    BODY = auto()
    EPILOGUE = auto()  # after the closing boundary: ignored


class MessageReader:
    """Reads one message line by line: ``feed`` each line with its line ending (SMTP's dot-stuffing undone), then
    ``finish``. Either raises ``EnvelopeError`` at the first sign that the message is not ours; ``held`` is the
    number of decoded bytes kept so far (what the message costs in memory)."""

    def __init__(self) -> None:
        self.held = 0
        self._at = _At.HEADERS
        self._lines = 0
        self._bytes = 0
        self._boundaries = 0
        self._multipart_headers = 0
        self._block: list[bytes] = []
        self._block_bytes = 0
        self._top: Message | None = None
        self._delimiter = b""
        self._kinds: list[str] = []  # media type of each body part so far
        self._cid: str | None = None
        self._body = io.BytesIO()
        self._carry = b""  # base64 characters short of a quantum, carried to the next line
        self._padded = False
        self._envelope: bytes | None = None
        self._tree_head: bytes | None = None
        self._directory: bytes | None = None
        self._parts: dict[str, bytes] = {}

    def feed(self, line: bytes) -> None:
        self._lines += 1
        self._bytes += len(line)
        if self._lines > self._bytes // _MIN_BYTES_PER_LINE + _FREE_LINES:
            raise EnvelopeError(f"the message has {self._lines} lines in {self._bytes} bytes: not a gwexchange message")
        at = self._at
        if at is _At.BODY:
            if line.startswith(b"--"):
                self._boundary_line(line)
            else:
                self._decode(line)
            return
        if line.startswith(b"--"):
            self._boundaries += 1
            if self._boundaries > MAX_PARTS + 8:
                raise EnvelopeError(
                    f"the message has {self._boundaries} MIME boundaries: at most {MAX_PARTS} parts are taken"
                )
        if _MULTIPART.match(line):
            self._multipart_headers += 1
            if self._multipart_headers > 1:
                raise EnvelopeError("the message nests multipart bodies: a gwexchange message has one level")
        if at is _At.HEADERS or at is _At.PART_HEADERS:
            if line.rstrip(b"\r\n"):
                self._header_line(line)
            elif at is _At.HEADERS:
                self._message_headers()
            else:
                self._part_headers()
        elif at is _At.PREAMBLE and self._delimiter and line.startswith(self._delimiter):
            self._boundary_line(line)

    def finish(self) -> ReceivedMessage:
        if self._at is _At.HEADERS:
            self._message_headers()  # a message of headers only: what they declare decides the error
        if self._at is _At.PREAMBLE:
            raise EnvelopeError("the message is malformed MIME (StartBoundaryNotFoundDefect): no body part starts")
        if self._at is not _At.EPILOGUE:
            raise EnvelopeError("the message is malformed MIME (CloseBoundaryNotFoundDefect): it ends inside a part")
        if self._envelope is None:
            raise EnvelopeError("the message has no body parts")
        top = self._top
        raw_id = top.get("X-Gwexchange-Message-Id") if top is not None else None
        message_id = str(raw_id).strip() if raw_id is not None else None
        return ReceivedMessage(
            message_id=message_id if is_message_id(message_id) else None,
            envelope_xml=self._envelope,
            parts=self._parts,
            tree_head=self._tree_head,
            directory=self._directory,
        )

    # the header blocks

    def _header_line(self, line: bytes) -> None:
        self._block.append(line)
        self._block_bytes += len(line)
        if len(self._block) > MAX_HEADER_LINES or self._block_bytes > MAX_HEADER_BYTES:
            raise EnvelopeError(
                f"a header block is over {MAX_HEADER_LINES} lines or {MAX_HEADER_BYTES} bytes: not a gwexchange message"
            )

    def _parsed_block(self) -> Message:
        block = b"".join(self._block)
        self._block = []
        self._block_bytes = 0
        return email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(block)

    def _message_headers(self) -> None:
        top = self._parsed_block()
        if top.defects:
            raise EnvelopeError(f"the message is malformed MIME ({top.defects[0].__class__.__name__})")
        if top.get_content_type() != "multipart/mixed":
            raise EnvelopeError(f"the message is {top.get_content_type()}, not multipart/mixed")
        boundary = top.get_boundary()
        if not boundary:
            raise EnvelopeError("the message is malformed MIME (NoBoundaryInMultipartDefect)")
        if not boundary.isascii():
            raise EnvelopeError("the message is malformed MIME (its boundary is not ASCII)")
        self._top = top
        self._delimiter = b"--" + boundary.encode("ascii")
        self._at = _At.PREAMBLE

    def _part_headers(self) -> None:
        body = self._parsed_block()
        if body.defects:
            raise EnvelopeError(f"a body part is malformed MIME ({body.defects[0].__class__.__name__})")
        kind = body.get_content_type()
        n = len(self._kinds)
        if n == 0:
            expected = ENVELOPE_MEDIA_TYPE
        elif kind == TREE_HEAD_MEDIA_TYPE and n == 1:
            expected = TREE_HEAD_MEDIA_TYPE
        elif kind == DIRECTORY_MEDIA_TYPE and self._kinds[-1] in (ENVELOPE_MEDIA_TYPE, TREE_HEAD_MEDIA_TYPE):
            expected = DIRECTORY_MEDIA_TYPE
        else:
            expected = PART_MEDIA_TYPE
        if kind != expected:
            raise EnvelopeError(f"a body part is {kind}, where {expected} belongs")
        if str(body.get("Content-Transfer-Encoding", "")).strip().lower() != "base64":
            raise EnvelopeError(f"a {expected} part is not base64-encoded")
        if expected == PART_MEDIA_TYPE:
            cid = str(body.get("Content-ID", "")).strip()
            if not (cid.startswith("<") and cid.endswith(">") and _CID.fullmatch(cid[1:-1])):
                raise EnvelopeError(f"a part has the Content-ID {cid[:80]!r}, not <part-N>")
            self._cid = cid[1:-1]
            if self._cid in self._parts:
                raise EnvelopeError(f"the part {self._cid} occurs twice")
            if len(self._parts) >= MAX_PARTS:
                raise EnvelopeError(f"an envelope has at most {MAX_PARTS} parts")
        self._kinds.append(expected)
        self._at = _At.BODY

    # the bodies

    def _boundary_line(self, line: bytes) -> None:
        """A line starting "--": a delimiter or the closing one if it is ours (RFC 2046: "--" boundary, then
        "--" for the last, then white space only), else a body line."""
        delimiter = self._delimiter
        rest = line[len(delimiter) :].rstrip(_WHITESPACE) if line.startswith(delimiter) else None
        if rest is None or rest not in (b"", b"--"):
            if self._at is _At.BODY:
                self._decode(line)
            return
        if self._at is _At.BODY:
            self._end_part()
        self._at = _At.EPILOGUE if rest == b"--" else _At.PART_HEADERS

    def _decode(self, line: bytes) -> None:
        kind = self._kinds[-1]
        text = line.translate(None, _WHITESPACE)
        if not text:
            return
        if self._padded:  # padding ends the data: nothing may follow it
            raise EnvelopeError(f"a {kind} part is not valid base64")
        if self._carry:
            text = self._carry + text
        whole = len(text) - len(text) % 4
        self._carry = text[whole:]
        try:
            octets = binascii.a2b_base64(text[:whole], strict_mode=True)
        except binascii.Error as e:
            raise EnvelopeError(f"a {kind} part is not valid base64") from e
        self._padded = text[whole - 1 : whole] == b"="
        self._body.write(octets)
        self.held += len(octets)

    def _end_part(self) -> None:
        kind = self._kinds[-1]
        if self._carry:
            raise EnvelopeError(f"a {kind} part is not valid base64")
        octets = self._body.getvalue()  # no copy: BytesIO hands over its buffer
        self._body = io.BytesIO()
        self._padded = False
        if kind == ENVELOPE_MEDIA_TYPE:
            self._envelope = octets
        elif kind == TREE_HEAD_MEDIA_TYPE:
            if len(octets) > MAX_TREE_HEAD_BYTES:
                raise EnvelopeError(f"the tree head is over {MAX_TREE_HEAD_BYTES} bytes")
            self._tree_head = octets
        elif kind == DIRECTORY_MEDIA_TYPE:
            self._directory = octets
        elif self._cid is not None:  # always, for a part
            self._parts[self._cid] = octets


def _lines(data: bytes) -> Iterator[bytes]:
    start = 0
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end + 1
        yield data[start:end]
        start = end


def decode_message(data: bytes) -> ReceivedMessage:
    """A whole message read as the SMTP listener reads it (``MessageReader``); ``EnvelopeError`` says what is
    wrong."""
    reader = MessageReader()
    for line in _lines(data):
        reader.feed(line)
    return reader.finish()


def envelope_message_id(envelope_xml: bytes) -> str:
    """The message id in an envelope's routing header (not verified: for headers and logs)."""
    try:
        root = xmlsafe.parse(envelope_xml, max_bytes=MAX_ENVELOPE_BYTES)
    except GwxError as e:
        raise InputError(f"not an envelope: {e}") from e
    found = root.find(f".//{eq('MessageId')}")
    text = (found.text or "").strip() if found is not None else ""
    if not is_message_id(text):
        raise InputError("the envelope has no message id in its header")
    return text


__all__ = [
    "DIRECTORY_MEDIA_TYPE",
    "DOMAIN",
    "ENVELOPE_MEDIA_TYPE",
    "MAX_HEADER_BYTES",
    "MAX_HEADER_LINES",
    "MAX_PARTS",
    "MAX_TREE_HEAD_BYTES",
    "PART_MEDIA_TYPE",
    "TREE_HEAD_MEDIA_TYPE",
    "MessageReader",
    "ReceivedMessage",
    "decode_message",
    "encode_message",
    "envelope_message_id",
    "node_address",
    "node_of_address",
]
