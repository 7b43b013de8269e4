"""Signed tree heads of gd-hub, as XML and as lines of a heads file: every field malformed or in a second encoding,
reordered, nested, oversize, a forged size, another node's name, the wrong certificates, SHA-1."""

from __future__ import annotations

import base64
import hashlib
import json

from lxml import etree

from gwexchange.archive.merkle import TreeState
from gwexchange.archive.treehead import head_to_line, sign_tree_head, tree_head_to_xml

from . import base
from .base import DOCTYPE_REFUSED, INVALID_BYTES
from .exchange_common import HEAD_AT, Context
from .exchange_pki import EXCHANGE


def treehead_attacks(c: Context) -> None:  # noqa: PLR0915 - one corpus section
    """Signed tree heads of gd-hub, as XML and as lines of a heads file."""
    pki, add = c.pki, c.add
    state = TreeState(1000, hashlib.sha256(b"gwexchange test vectors").digest())
    head = sign_tree_head(state, pki.node_hub.signer, "gd-hub", HEAD_AT)
    xml = tree_head_to_xml(head)
    text = xml.decode("ascii")
    size_attr, root_hex = 'size="1000"', head.root_hash.hex()
    line = head_to_line(head)
    (EXCHANGE / "treehead.line").write_bytes(line + b"\n")
    (EXCHANGE / "treehead.xml").write_bytes(xml)

    def th(name: str, cls: str, data: bytes | str | etree._Element, error: str, message: str, description: str) -> None:
        add(name, cls, "treehead", data.encode("utf-8") if isinstance(data, str) else data, error, message, description)

    def swap(old: str, new: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)

    th(
        "th-doctype.xml",
        "dtd-entities",
        swap("?>", '?>\n<!DOCTYPE th:TreeHead [<!ENTITY s "1000">]>'),
        "XmlInputError",
        DOCTYPE_REFUSED,
        "A tree head with an internal DTD.",
    )
    th(
        "th-wrong-root.xml",
        "treehead-malformed",
        swap("<th:TreeHead", "<th:Head").replace("</th:TreeHead>", "</th:Head>"),
        "InputError",
        "not a tree head",
        "The root element renamed.",
    )
    th(
        "th-extra-attribute.xml",
        "treehead-malformed",
        swap(size_attr, size_attr + ' origin="gd-czt"'),
        "InputError",
        "has exactly the attributes node, size and time",
        "An extra attribute on the head.",
    )
    th(
        "th-size-leading-zero.xml",
        "treehead-malformed",
        swap(size_attr, 'size="01000"'),
        "InputError",
        "is not a decimal number without leading zeros",
        "The size with a leading zero (a second encoding).",
    )
    th(
        "th-size-negative.xml",
        "treehead-malformed",
        swap(size_attr, 'size="-1"'),
        "InputError",
        "is not a decimal number without leading zeros",
        "A negative size.",
    )
    th(
        "th-size-over-2-63.xml",
        "treehead-malformed",
        swap(size_attr, 'size="9999999999999999999"'),
        "InputError",
        "is not a whole number from 0 to 2^63 - 1",
        "A size beyond 2^63 - 1.",
    )
    th(
        "th-size-huge.xml",
        "oversize-depth",
        swap(size_attr, 'size="' + "9" * 5000 + '"'),
        "InputError",
        "is not a decimal number without leading zeros",
        "A size of 5,000 digits (int() of it would be refused anyway).",
    )
    th(
        "th-root-uppercase.xml",
        "treehead-malformed",
        swap(root_hex, root_hex.upper()),
        "InputError",
        "th:RootHash is 64 lower-case hex digits",
        "The root hash in upper case.",
    )
    th(
        "th-root-short.xml",
        "treehead-malformed",
        swap(root_hex, root_hex[:-2]),
        "InputError",
        "th:RootHash is 64 lower-case hex digits",
        "A 31-byte root hash.",
    )
    th(
        "th-time-without-millis.xml",
        "treehead-malformed",
        swap(".123Z", "Z"),
        "InputError",
        "is not of the form 2026-11-20T08:00:00.000Z",
        "The time without milliseconds.",
    )
    th(
        "th-time-impossible.xml",
        "treehead-malformed",
        swap("2026-11-20T", "2026-02-30T"),
        "InputError",
        "is not a real time",
        "The 30th of February.",
    )
    th(
        "th-time-offset.xml",
        "treehead-malformed",
        swap(".123Z", ".123+08:00"),
        "InputError",
        "is not of the form",
        "A time with an offset instead of Z.",
    )
    signature_b64 = base.b64(head.signature)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    assert signature_b64.endswith("==")  # 64 bytes: the last character before the padding has 4 unused bits
    last = alphabet.index(signature_b64[-3])
    stray = signature_b64[:-3] + alphabet[last ^ 0x01] + "=="
    assert base64.b64decode(stray) == head.signature
    th(
        "th-signature-not-canonical.xml",
        "treehead-malformed",
        swap(signature_b64, stray),
        "InputError",
        "is not canonical base64",
        "The signature's base64 with a stray bit in the unused low bits: the same "
        "signature, a second encoding of the head.",
    )
    th(
        "th-signature-two-lines.xml",
        "treehead-malformed",
        swap(signature_b64, signature_b64[:20] + "\n" + signature_b64[20:]),
        "InputError",
        "th:Signature is not base64",
        "The signature's base64 broken over two lines.",
    )
    th(
        "th-signature-not-base64.xml",
        "treehead-malformed",
        swap(signature_b64, "!" + signature_b64[1:]),
        "InputError",
        "th:Signature is not base64",
        "A signature that is not base64.",
    )
    certificate_b64 = base64.b64encode(head.certificate).decode("ascii")
    th(
        "th-certificate-non-ascii.xml",
        "invalid-utf8",
        swap(certificate_b64, "\ufeff" + certificate_b64),
        "InputError",
        "th:Certificate is not base64",
        "A byte-order mark (valid UTF-8, not base64) before the certificate (once a ValueError escaped the parser).",
    )
    th(
        "th-signature-sha1.xml",
        "algorithm-downgrade",
        swap(head.method.value, base.ECDSA_SHA1),
        "InputError",
        "is not accepted",
        "The signature algorithm relabelled ECDSA-SHA1.",
    )
    th(
        "th-children-reordered.xml",
        "treehead-malformed",
        _reorder(xml),
        "InputError",
        "must contain exactly RootHash, Signature and Certificate, in that order",
        "Certificate before Signature.",
    )
    th(
        "th-text-inside.xml",
        "treehead-malformed",
        swap("<th:RootHash>", "size 1000000<th:RootHash>"),
        "InputError",
        "holds only its three child elements",
        "Text in the head claiming another size.",
    )
    th(
        "th-nested-deep.xml",
        "oversize-depth",
        swap("</th:Certificate>", "</th:Certificate>" + "<th:x>" * 5 + "</th:x>" * 5),
        "XmlInputError",
        "XML is nested deeper than 4 levels",
        "Elements nested below the head's four levels.",
    )
    th(
        "th-oversize.xml",
        "oversize-depth",
        swap("<th:RootHash>", " " * 70_000 + "<th:RootHash>"),
        "XmlInputError",
        "more than the limit of 65536",
        "A head padded past 64 KiB.",
    )
    th(
        "th-invalid-utf8.xml",
        "invalid-utf8",
        xml.replace(b'node="gd-hub"', b'node="gd-h\xffub"', 1),
        "XmlInputError",
        INVALID_BYTES,
        "An invalid UTF-8 byte in the node id.",
    )
    th(
        "th-size-changed.xml",
        "treehead-malformed",
        swap(size_attr, 'size="1001"'),
        "SignatureError",
        "signature value does not verify",
        "The size raised to 1001 after signing (a forged growth).",
    )
    th(
        "th-node-mismatch.xml",
        "treehead-malformed",
        swap('node="gd-hub"', 'node="gd-czt"'),
        "SignatureError",
        "the tree head names node gd-czt, but node gd-hub's certificate signed it",
        "gd-hub's head claimed for gd-czt.",
    )
    for name, signer, node_id, message, description in (
        (
            "th-cert-department.xml",
            pki.czt,
            "gd-hub",
            "is a department certificate, not a node one",
            "A head signed with a department's signing certificate.",
        ),
        (
            "th-cert-expired.xml",
            pki.node_czt_expired,
            "gd-czt",
            "is not valid at 2026-11-20T11:30:00Z",
            "A head signed with gd-czt's expired node certificate.",
        ),
        (
            "th-cert-revoked.xml",
            pki.node_czt_revoked,
            "gd-czt",
            "was revoked on 2026-06-01T00:00:00Z (keyCompromise)",
            "A head signed with gd-czt's revoked node certificate.",
        ),
        (
            "th-cert-self-signed.xml",
            pki.node_czt_self_signed,
            "gd-czt",
            "certificate is self-signed",
            "A head signed with a self-signed node certificate.",
        ),
    ):
        from gwexchange.archive.treehead import SignedTreeHead, signed_bytes

        method, value = signer.signer.suite.sign(signer.key, signed_bytes(node_id, state.size, state.root, HEAD_AT))
        forged = SignedTreeHead(node_id, state.size, state.root, HEAD_AT, method, value, signer.der)
        th(name, "certificates", tree_head_to_xml(forged), "TrustError", message, description)

    def thl(name: str, cls: str, data: bytes, error: str, message: str, description: str) -> None:
        add(name, cls, "treehead-line", data + b"\n", error, message, description)

    record = json.loads(line)
    thl(
        "thl-not-json.line",
        "treehead-malformed",
        line[:-10],
        "VerificationError",
        "a tree head line is malformed",
        "A line cut short (a torn write).",
    )
    thl(
        "thl-keys-reordered.line",
        "treehead-malformed",
        json.dumps(dict(reversed(record.items())), separators=(",", ":")).encode(),
        "VerificationError",
        "a tree head line must have exactly the keys",
        "The keys in reverse order.",
    )
    thl(
        "thl-extra-key.line",
        "treehead-malformed",
        json.dumps({**record, "note": "x"}, separators=(",", ":")).encode(),
        "VerificationError",
        "a tree head line must have exactly the keys",
        "An extra key.",
    )
    for name, value, description in (
        ("thl-size-string.line", "1000", "The size as a string."),
        ("thl-size-float.line", 1000.0, "The size as a float."),
        ("thl-size-bool.line", True, "The size as true."),
        ("thl-size-negative.line", -1, "A negative size."),
    ):
        thl(
            name,
            "treehead-malformed",
            json.dumps({**record, "size": value}, separators=(",", ":")).encode(),
            "VerificationError",
            "a tree head line is malformed",
            description,
        )
    thl(
        "thl-size-nan.line",
        "treehead-malformed",
        line.replace(b'"size":1000', b'"size":NaN'),
        "VerificationError",
        "a tree head line is malformed",
        "NaN, which Python's json accepts, as the size.",
    )
    thl(
        "thl-size-5000-digits.line",
        "oversize-depth",
        line.replace(b'"size":1000', b'"size":' + b"9" * 5000),
        "VerificationError",
        "a tree head line is malformed",
        "A size of 5,000 digits (over int()'s digit limit).",
    )
    thl(
        "thl-spaces.line",
        "treehead-malformed",
        json.dumps(record).encode(),
        "VerificationError",
        "not in its canonical form",
        "The same head with spaces after the separators (a second encoding).",
    )
    thl(
        "thl-uppercase-hex.line",
        "treehead-malformed",
        line.replace(root_hex.encode(), root_hex.upper().encode()),
        "VerificationError",
        "a tree head line has a field of the wrong form",
        "The root hash in upper case.",
    )
    thl(
        "thl-duplicate-key.line",
        "treehead-malformed",
        line.replace(b'{"node":"gd-hub"', b'{"node":"gd-czt","node":"gd-hub"', 1),
        "VerificationError",
        "not in its canonical form",
        "The node key twice (json keeps the last).",
    )
    thl(
        "thl-invalid-utf8.line",
        "invalid-utf8",
        line.replace(b'"gd-hub"', b'"gd-h\xffub"', 1),
        "VerificationError",
        "a tree head line is malformed",
        "An invalid UTF-8 byte in the node id.",
    )
    thl(
        "thl-size-forged.line",
        "treehead-malformed",
        line.replace(b'"size":1000', b'"size":2000'),
        "SignatureError",
        "signature value does not verify",
        "The size doubled in a canonical line.",
    )


def _reorder(xml: bytes) -> bytes:
    root = base.parse(xml)
    root[1].addprevious(root[2])
    return base.serialize(root)
