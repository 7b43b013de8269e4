"""Air-gap bundles from gd-czt for gd-hub: not a ZIP or truncated, the wrong mimetype, a deflate bomb, encrypted,
doubled or path-traversing members, names not UTF-8, manifests missing or lying, envelopes and parts tampered,
re-addressed or not routed here, 10,001 members."""

from __future__ import annotations

import json
import uuid

from lxml import etree

from gwexchange.crypto.xmldsig import sign_enveloped
from gwexchange.routing import bundle as bundle_module

from . import base
from .base import DIGEST_CHANGED, GXT, OFFICE
from .exchange_common import ENVELOPE_AT, Context, document, message_id, rand, sha256, unsigned_copy
from .exchange_pki import EXCHANGE, FGW
from .exchange_zip import flip_member_data, name_not_utf8, set_central_size, set_encrypted_flag, zip_bytes


def bundle_attacks(c: Context) -> None:  # noqa: PLR0915 - one corpus section
    """Air-gap bundles from gd-czt for gd-hub."""
    ex, add = c.ex, c.add
    parts: dict[str, bytes] = {}
    sealed = ex.seal(document(attachment=True), parts=parts)
    mid = sealed.header.message_id
    xml = sealed.envelope_xml

    def manifest(entries: list[tuple[str, bytes]], **changes: object) -> bytes:
        value: dict[str, object] = {
            "format": bundle_module.FORMAT, "bundle_id": str(uuid.UUID(bytes=rand(16), version=4)), "from": "gd-czt",
            "to": "gd-hub", "created": ENVELOPE_AT.isoformat(),
            "envelopes": [{"message_id": m, "envelope_sha256": sha256(x)} for m, x in entries],
        }  # fmt: skip
        value.update(changes)
        return json.dumps(value, ensure_ascii=False, indent=1).encode("utf-8")

    def members(
        envelope_xml: bytes = xml,
        *,
        name: str = mid,
        digest_of: bytes | None = None,
        with_part: bytes | None = None,
        **changes: object,
    ) -> list[tuple[str, bytes]]:
        return [
            ("mimetype", bundle_module.MIMETYPE.encode()),
            (
                bundle_module.MANIFEST,
                manifest([(name, digest_of if digest_of is not None else envelope_xml)], **changes),
            ),
            (f"envelopes/{name}/envelope.xml", envelope_xml),
            (f"envelopes/{name}/parts/part-1", parts["part-1"] if with_part is None else with_part),
        ]

    good = zip_bytes(members())
    (EXCHANGE / "bundle.gwxb").write_bytes(good)

    def bundle(name: str, cls: str, data: bytes, error: str, message: str, description: str) -> None:
        add(name, cls, "bundle", data, error, message, description)

    bundle(
        "bundle-not-zip.gwxb",
        "bundle-garbled",
        b"This is not a bundle.\n" * 20,
        "InputError",
        "is not a bundle",
        "A text file named like a bundle.",
    )
    bundle(
        "bundle-truncated.gwxb",
        "bundle-garbled",
        good[: len(good) // 2],
        "InputError",
        "is not a bundle",
        "The valid bundle cut in half (no central directory).",
    )
    bundle(
        "bundle-truncated-central-directory.gwxb",
        "bundle-garbled",
        good[:-30],
        "InputError",
        "is not a bundle",
        "The valid bundle without the end of its central directory.",
    )
    bundle(
        "bundle-empty-zip.gwxb",
        "bundle-garbled",
        zip_bytes([]),
        "EnvelopeError",
        "no leading mimetype member",
        "An empty ZIP file.",
    )
    reordered = members()
    bundle(
        "bundle-mimetype-not-first.gwxb",
        "bundle-garbled",
        zip_bytes(reordered[1:] + reordered[:1]),
        "EnvelopeError",
        "no leading mimetype member",
        "The mimetype member last instead of first.",
    )
    bundle(
        "bundle-wrong-mimetype.gwxb",
        "bundle-garbled",
        zip_bytes([("mimetype", b"application/zip"), *members()[1:]]),
        "EnvelopeError",
        "wrong mimetype",
        "mimetype says application/zip.",
    )
    bundle(
        "bundle-envelope-package-mimetype.gwxb",
        "bundle-garbled",
        zip_bytes([("mimetype", b"application/vnd.gwexchange.envelope+zip"), *members()[1:]]),
        "EnvelopeError",
        "wrong mimetype",
        "An envelope package's mimetype in a bundle.",
    )
    bomb = members()
    bomb.append((f"envelopes/{mid}/parts/part-2", b"\0" * 5_000_000))
    bundle(
        "bundle-deflate-bomb.gwxb",
        "oversize-depth",
        zip_bytes(bomb, compress={f"envelopes/{mid}/parts/part-2"}),
        "EnvelopeError",
        "is compressed; bundles store members as-is",
        "A 5 MB member of zeros deflated to a few kB: refused before anything is inflated.",
    )
    bundle(
        "bundle-encrypted-member.gwxb",
        "bundle-garbled",
        set_encrypted_flag(good, f"envelopes/{mid}/envelope.xml"),
        "EnvelopeError",
        "is encrypted",
        "The envelope member flagged as encrypted (ZipCrypto).",
    )
    bundle(
        "bundle-duplicate-member.gwxb",
        "bundle-garbled",
        zip_bytes([*members(), (f"envelopes/{mid}/envelope.xml", c.envelope.envelope_xml)]),
        "EnvelopeError",
        "appears twice",
        "Two members named like the envelope: which one would be read?",
    )
    for name, member, description in (
        ("bundle-path-traversal.gwxb", "../../../home/gwx/.ssh/authorized_keys", "A member whose name climbs out."),
        ("bundle-absolute-path.gwxb", "/etc/cron.d/gwx", "A member with an absolute path."),
        ("bundle-backslash-path.gwxb", f"envelopes\\{mid}\\envelope.xml", "A member named with backslashes."),
        ("bundle-part-name-traversal.gwxb", f"envelopes/{mid}/parts/../../../x", "A part member climbing out."),
    ):
        bundle(
            name,
            "bundle-garbled",
            zip_bytes([*members(), (member, b"x")]),
            "EnvelopeError",
            "unexpected member",
            description,
        )
    bundle(
        "bundle-name-not-utf8-central.gwxb",
        "invalid-utf8",
        name_not_utf8(good, "manifest.json", central=True),
        "InputError",
        "is not a bundle",
        "The manifest's name flagged UTF-8 but invalid in the central directory (once a UnicodeDecodeError escaped).",
    )
    bundle(
        "bundle-name-not-utf8-local.gwxb",
        "invalid-utf8",
        name_not_utf8(good, "manifest.json", central=False),
        "EnvelopeError",
        "member manifest.json is damaged",
        "The manifest's name flagged UTF-8 but invalid in its local header (once a UnicodeDecodeError escaped).",
    )
    bundle(
        "bundle-manifest-missing.gwxb",
        "bundle-garbled",
        zip_bytes([m for m in members() if m[0] != "manifest.json"]),
        "EnvelopeError",
        "no manifest.json",
        "No manifest.",
    )
    bundle(
        "bundle-manifest-not-json.gwxb",
        "bundle-garbled",
        zip_bytes([(n, b"{'format': 1" if n == "manifest.json" else d) for n, d in members()]),
        "EnvelopeError",
        "manifest.json does not parse",
        "A manifest that is not JSON.",
    )
    bundle(
        "bundle-manifest-invalid-utf8.gwxb",
        "invalid-utf8",
        zip_bytes([(n, d.replace(b'"gd-czt"', b'"gd-\xffczt"') if n == "manifest.json" else d) for n, d in members()]),
        "EnvelopeError",
        "manifest.json does not parse",
        "A manifest with an invalid UTF-8 byte.",
    )
    bundle(
        "bundle-manifest-wrong-format.gwxb",
        "bundle-garbled",
        zip_bytes(members(format=2)),
        "EnvelopeError",
        "is not a format 1 manifest",
        "A format 2 manifest.",
    )
    bundle(
        "bundle-manifest-deep-json.gwxb",
        "oversize-depth",
        zip_bytes([(n, b"[" * 100_000 + b"]" * 100_000 if n == "manifest.json" else d) for n, d in members()]),
        "EnvelopeError",
        "manifest.json does not parse",
        "A manifest of 100,000 nested JSON arrays.",
    )
    bundle(
        "bundle-manifest-extra-envelope.gwxb",
        "bundle-garbled",
        zip_bytes(
            [(n, manifest([(mid, xml), (message_id(), b"x")]) if n == "manifest.json" else d) for n, d in members()]
        ),
        "EnvelopeError",
        "the manifest and the envelopes in the bundle do not match",
        "The manifest lists an envelope the bundle does not hold.",
    )
    bundle(
        "bundle-manifest-bad-message-id.gwxb",
        "bundle-garbled",
        zip_bytes([(n, manifest([("../../x", xml)]) if n == "manifest.json" else d) for n, d in members()]),
        "EnvelopeError",
        "manifest.json names a bad message id",
        "A manifest entry whose message id is a path.",
    )
    orphan = members()
    orphan.append((f"envelopes/{message_id()}/parts/part-1", b"x"))
    bundle(
        "bundle-parts-without-envelope.gwxb",
        "bundle-garbled",
        zip_bytes(orphan),
        "EnvelopeError",
        "parts without their envelope",
        "A part member with no envelope.",
    )
    bundle(
        "bundle-for-other-node.gwxb",
        "bundle-garbled",
        zip_bytes(members(to="gd-edge")),
        "EnvelopeError",
        "is a bundle for node gd-edge, not for this node gd-hub",
        "A bundle made for gd-edge, imported at gd-hub.",
    )
    bundle(
        "bundle-manifest-oversize-claimed.gwxb",
        "oversize-depth",
        set_central_size(good, "manifest.json", bundle_module.MAX_MANIFEST_BYTES + 1),
        "EnvelopeError",
        "member 'manifest.json' is larger than 4194304 bytes",
        "The central directory claims a 4 MiB + 1 byte manifest.",
    )
    # Refused envelope by envelope.
    bundle(
        "bundle-envelope-crc-damaged.gwxb",
        "bundle-garbled",
        flip_member_data(good, f"envelopes/{mid}/envelope.xml", 300),
        "EnvelopeError",
        "is damaged",
        "One bit of the envelope member flipped, its CRC not.",
    )
    bundle(
        "bundle-digest-mismatch.gwxb",
        "bundle-garbled",
        zip_bytes(members(digest_of=b"another envelope")),
        "EnvelopeError",
        "does not match the digest in the manifest",
        "The manifest's digest is not the envelope's.",
    )
    tampered = xml.replace(f'code="{OFFICE}"'.encode(), f'code="{FGW}"'.encode(), 1)
    bundle(
        "bundle-envelope-readdressed.gwxb",
        "readdressed",
        zip_bytes(members(tampered)),
        "SignatureError",
        DIGEST_CHANGED,
        "The envelope re-addressed to gd.gov.fgw and the manifest digest updated to match.",
    )
    bundle(
        "bundle-envelope-misfiled.gwxb",
        "bundle-garbled",
        zip_bytes(members(name=message_id())),
        "EnvelopeError",
        "the envelope filed as",
        "The envelope filed under another message id.",
    )
    flipped = bytearray(parts["part-1"])
    flipped[50] ^= 0x01
    bundle(
        "bundle-part-tampered.gwxb",
        "bundle-garbled",
        zip_bytes(members(with_part=bytes(flipped))),
        "EnvelopeError",
        "does not match the size and digest signed in the envelope",
        "One bit of the part flipped (the ZIP's CRC made to match).",
    )
    bundle(
        "bundle-part-missing.gwxb",
        "bundle-garbled",
        zip_bytes(members()[:3]),
        "EnvelopeError",
        "are not those its envelope signs",
        "The envelope without its part.",
    )
    elsewhere: dict[str, bytes] = {}
    to_gxt = ex.seal(document((GXT,), attachment=True), parts=elsewhere)
    gxt_mid = to_gxt.header.message_id
    bundle(
        "bundle-not-routed-here-with-part.gwxb",
        "readdressed",
        zip_bytes(
            [
                ("mimetype", bundle_module.MIMETYPE.encode()),
                (bundle_module.MANIFEST, manifest([(gxt_mid, to_gxt.envelope_xml)])),
                (f"envelopes/{gxt_mid}/envelope.xml", to_gxt.envelope_xml),
                (f"envelopes/{gxt_mid}/parts/part-1", elsewhere["part-1"]),
            ]
        ),
        "EnvelopeError",
        "is not routed through node gd-hub",
        "A valid envelope with its part for gd.gov.gxt (served by gd-edge) in a bundle for gd-hub: refused after its "
        "part was staged (the part once stayed on disk).",
    )
    bundle(
        "bundle-expired-node-signature.gwxb",
        "certificates",
        zip_bytes(members(base.serialize(_resigned_by(xml, c.pki.node_czt_expired)))),
        "TrustError",
        "is not valid at 2026-11-20T10:00:00Z",
        "An envelope signed with gd-czt's expired node certificate.",
    )
    add(
        "bundle-too-many-members.gwxb",
        "oversize-depth",
        "bundle",
        b"",
        "EnvelopeError",
        "claims 10001 members (at most 10000)",
        "A bundle of 10,001 members (made at run time).",
    )


def _resigned_by(xml: bytes, node: base.Holder) -> etree._Element:
    root = unsigned_copy(xml)
    sign_enveloped(root, node.signer)
    return root
