"""Whole SMTP messages from gd-czt to gd-hub carrying an envelope with one part, garbled: truncated, boundaries
broken, re-typed and re-encoded, the envelope damaged, Content-IDs that traverse paths, are missing or doubled,
parts missing, tampered or nested."""

from __future__ import annotations

from gwexchange.routing.mime import encode_message

from .base import DOCTYPE_REFUSED, GXT, INVALID_BYTES
from .exchange_common import Context, document
from .exchange_pki import EXCHANGE


def mime_attacks(c: Context) -> None:
    """Whole SMTP messages from gd-czt to gd-hub carrying an envelope with one part, garbled."""
    ex, add = c.ex, c.add
    parts: dict[str, bytes] = {}
    sealed = ex.seal(document(attachment=True), parts=parts)
    mid = sealed.header.message_id
    good = encode_message("gd-czt", "gd-hub", sealed.envelope_xml, parts, message_id=mid)
    (EXCHANGE / "message.eml").write_bytes(good)
    lines = good.split(b"\r\n")
    boundary = next(line for line in lines if line.startswith(b"--=_gwx_"))[2:]
    head_end = good.index(b"\r\n\r\n") + 4

    def mime(name: str, cls: str, data: bytes, error: str, message: str, description: str) -> None:
        add(name, cls, "mime", data, error, message, description)

    def encoded(xml: bytes, part_octets: dict[str, bytes] | None = None) -> bytes:
        return encode_message("gd-czt", "gd-hub", xml, parts if part_octets is None else part_octets, message_id=mid)

    mime(
        "mime-truncated-half.eml",
        "mime-garbled",
        good[: len(good) // 2],
        "EnvelopeError",
        "the message is malformed MIME (CloseBoundaryNotFoundDefect)",
        "The valid message cut in half.",
    )
    mime(
        "mime-no-closing-boundary.eml",
        "mime-garbled",
        good.replace(b"--" + boundary + b"--", b""),
        "EnvelopeError",
        "malformed MIME",
        "The closing boundary removed.",
    )
    mime(
        "mime-no-boundary-parameter.eml",
        "mime-garbled",
        good.replace(b'; boundary="' + boundary + b'"', b"", 1),
        "EnvelopeError",
        "malformed MIME",
        "multipart/mixed without a boundary parameter.",
    )
    mime(
        "mime-wrong-boundary.eml",
        "mime-garbled",
        good.replace(b'boundary="' + boundary, b'boundary="x' + boundary, 1),
        "EnvelopeError",
        "malformed MIME",
        "A boundary parameter that no body line uses.",
    )
    mime(
        "mime-text-plain.eml",
        "mime-garbled",
        good.replace(b"Content-Type: multipart/mixed", b"Content-Type: text/plain", 1),
        "EnvelopeError",
        "not multipart/mixed",
        "The message declared text/plain.",
    )
    mime("mime-empty.eml", "mime-garbled", b"", "EnvelopeError", "not multipart/mixed", "An empty message.")
    mime(
        "mime-headers-only.eml",
        "mime-garbled",
        good[:head_end],
        "EnvelopeError",
        "malformed MIME",
        "Only the message headers, no body.",
    )
    mime(
        "mime-envelope-wrong-type.eml",
        "mime-garbled",
        good.replace(b"Content-Type: application/vnd.gwexchange.envelope+xml", b"Content-Type: text/xml", 1),
        "EnvelopeError",
        "a body part is text/xml, where application/vnd.gwexchange.envelope+xml belongs",
        "The envelope part labelled text/xml.",
    )
    mime(
        "mime-envelope-quoted-printable.eml",
        "mime-garbled",
        good.replace(b"Content-Transfer-Encoding: base64", b"Content-Transfer-Encoding: quoted-printable", 1),
        "EnvelopeError",
        "is not base64-encoded",
        "The envelope part labelled quoted-printable.",
    )
    mime(
        "mime-envelope-8bit.eml",
        "mime-garbled",
        good[:head_end] + b"--" + boundary + b"\r\nContent-Type: application/vnd.gwexchange.envelope+xml\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n" + sealed.envelope_xml + b"\r\n--" + boundary + b"--\r\n",
        "EnvelopeError",
        "is not base64-encoded",
        "The envelope XML sent raw as 8bit.",
    )
    body_start = good.index(b"\r\n\r\n", head_end + 1) + 4
    mime(
        "mime-envelope-bad-base64.eml",
        "mime-garbled",
        good[:body_start] + b"!!!!" + good[body_start + 4 :],
        "EnvelopeError",
        "is not valid base64",
        "Four characters of the envelope's base64 replaced by '!'.",
    )
    mime(
        "mime-envelope-garbage.eml",
        "mime-garbled",
        encoded(b"\x00\x01garbage, not XML" * 10),
        "XmlInputError",
        "malformed XML: Document is empty",
        "Well-formed MIME whose envelope part is not XML.",
    )
    mime(
        "mime-envelope-invalid-utf8.eml",
        "invalid-utf8",
        encoded(sealed.envelope_xml.replace(b"<env:Kind>", b"<env:Kind>\xff", 1)),
        "XmlInputError",
        INVALID_BYTES,
        "Well-formed MIME whose envelope has an invalid UTF-8 byte.",
    )
    mime(
        "mime-envelope-doctype.eml",
        "dtd-entities",
        encoded(
            sealed.envelope_xml.replace(b"?>", b'?>\n<!DOCTYPE x [<!ENTITY e SYSTEM "http://attacker.example/">]>', 1)
        ),
        "XmlInputError",
        DOCTYPE_REFUSED,
        "Well-formed MIME carrying an envelope with an external-entity DTD.",
    )
    mime(
        "mime-part-cid-traversal.eml",
        "mime-garbled",
        good.replace(b"Content-ID: <part-1>", b"Content-ID: <../../etc/cron.d/x>", 1),
        "EnvelopeError",
        "not <part-N>",
        "A part whose Content-ID is a path out of the parts folder.",
    )
    mime(
        "mime-part-cid-missing.eml",
        "mime-garbled",
        good.replace(b"Content-ID: <part-1>\r\n", b"", 1),
        "EnvelopeError",
        "not <part-N>",
        "A part without a Content-ID.",
    )
    duplicate = good.replace(b"--" + boundary + b"--", b"", 1)
    part_start = duplicate.index(b"--" + boundary + b"\r\nContent-Type: application/octet-stream")
    duplicate = duplicate + duplicate[part_start:] + b"--" + boundary + b"--\r\n"
    mime(
        "mime-part-cid-duplicate.eml",
        "mime-garbled",
        duplicate,
        "EnvelopeError",
        "the part part-1 occurs twice",
        "The part twice under the same Content-ID.",
    )
    mime(
        "mime-part-nested-multipart.eml",
        "mime-garbled",
        good.replace(b"Content-Type: application/octet-stream", b'Content-Type: multipart/mixed; boundary="inner"', 1),
        "EnvelopeError",
        "the message nests multipart bodies",  # refused by its shape, before the MIME parser sees it
        "A part that claims to be multipart itself.",
    )
    mime(
        "mime-part-missing.eml",
        "mime-garbled",
        encoded(sealed.envelope_xml, {}),
        "EnvelopeError",
        "lacks its part part-1",
        "The envelope without its part.",
    )
    mime(
        "mime-part-tampered.eml",
        "mime-garbled",
        encoded(
            sealed.envelope_xml,
            {"part-1": parts["part-1"][:100] + bytes([parts["part-1"][100] ^ 1]) + parts["part-1"][101:]},
        ),
        "EnvelopeError",
        "does not match the size and digest signed in the envelope",
        "One bit of the part flipped.",
    )
    mime(
        "mime-part-truncated.eml",
        "mime-garbled",
        encoded(sealed.envelope_xml, {"part-1": parts["part-1"][:-1]}),
        "EnvelopeError",
        "does not match the size and digest signed in the envelope",
        "The part one byte short.",
    )
    mime(
        "mime-part-overlong.eml",
        "mime-garbled",
        encoded(sealed.envelope_xml, {"part-1": parts["part-1"] + b"\0"}),
        "EnvelopeError",
        "is longer than the",
        "The part one byte longer than signed.",
    )
    elsewhere: dict[str, bytes] = {}
    to_gxt = ex.seal(document((GXT,), attachment=True), parts=elsewhere)
    mime(
        "mime-not-routed-here-with-part.eml",
        "readdressed",
        encode_message("gd-czt", "gd-hub", to_gxt.envelope_xml, elsewhere, message_id=to_gxt.header.message_id),
        "EnvelopeError",
        "is not routed through node gd-hub",
        "A valid envelope with its part for gd.gov.gxt (served by gd-edge) sent to gd-hub: refused after its part "
        "was staged.",
    )
    add(
        "mime-replayed-with-stray-part.eml",
        "replay-expiry",
        "mime",
        encoded(c.envelope.envelope_xml, {"part-1": parts["part-1"]}),
        "duplicate",
        "duplicate message id",
        "The valid part-less envelope again, with a stray part-1, after gd-hub took it in: acknowledged, and the "
        "stray part never stored.",
        setup="receive",
    )
