"""Directories offered to a node that holds serial 5: unsigned, expired, not yet valid, rolled back, the held serial
with other content, signed by a department, a node, the attacker's root or itself, changed after signing, two
signatures, SHA-1, a DTD, not a directory, an unknown zone, invalid UTF-8."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime

from lxml import etree

from gwexchange.network.directory_xml import directory_to_element, directory_to_xml, sign_directory

from . import base
from .base import DIGEST_CHANGED, DOCTYPE_REFUSED, INVALID_BYTES
from .exchange_common import Context


def directory_attacks(c: Context) -> None:
    """Directories offered to a node that holds serial 5."""
    pki, add, held = c.pki, c.add, c.ex.directory

    def directory(
        name: str, cls: str, data: bytes | etree._Element, error: str, message: str, description: str
    ) -> None:
        add(name, cls, "directory", data, error, message, description)

    newer = replace(held, serial=6)
    directory(
        "dir-unsigned.xml",
        "directory-untrusted",
        directory_to_xml(newer),
        "SignatureError",
        "the directory is not signed",
        "Directory 6 as built, never signed.",
    )
    directory(
        "dir-expired.xml",
        "directory-untrusted",
        sign_directory(
            replace(held, serial=6, issued=datetime(2026, 1, 1, tzinfo=UTC), expires=datetime(2026, 11, 1, tzinfo=UTC)),
            pki.authority.signer,
        ),
        "TrustError",
        "directory 6 expired on 2026-11-01T00:00:00Z",
        "A signed directory that expired.",
    )
    directory(
        "dir-not-yet-valid.xml",
        "directory-untrusted",
        sign_directory(replace(held, serial=6, issued=datetime(2026, 12, 1, tzinfo=UTC)), pki.authority.signer),
        "TrustError",
        "directory 6 is not valid yet",
        "A signed directory issued in December.",
    )
    directory(
        "dir-older-serial.xml",
        "directory-untrusted",
        sign_directory(replace(held, serial=4), pki.authority.signer),
        "TrustError",
        "directory 4 is older than directory 5 held here: refused (rollback)",
        "Directory 4, validly signed, offered to a node holding 5 (rollback to an old route or key).",
    )
    directory(
        "dir-serial-1.xml",
        "directory-untrusted",
        sign_directory(replace(held, serial=1), pki.authority.signer),
        "TrustError",
        "is older than directory 5",
        "The very first directory, replayed.",
    )
    directory(
        "dir-same-serial-different.xml",
        "directory-untrusted",
        sign_directory(replace(held, links=held.links[:1]), pki.authority.signer),
        "TrustError",
        "differs from the directory 5 held here under the same serial",
        "Serial 5 again with a link removed: two directories under one serial.",
    )
    directory(
        "dir-signed-by-department.xml",
        "directory-untrusted",
        sign_directory(newer, pki.czt.signer),
        "TrustError",
        "the directory is signed by gd.gov.czt; only the authority gd.gov.ca publishes it",
        "Directory 6 signed by gd.gov.czt, a trusted department but not the authority.",
    )
    root = directory_to_element(newer)
    base.signature_of(root, pki.node_hub, base.Shape(method=base.ECDSA_SHA256))
    directory(
        "dir-signed-by-node.xml",
        "certificates",
        root,
        "TrustError",
        "is a node certificate, not a department one",
        "Directory 6 signed with gd-hub's node certificate.",
    )
    directory(
        "dir-signed-by-attacker-root.xml",
        "certificates",
        sign_directory(newer, pki.authority_attacker.signer),
        "TrustError",
        "certificate is not issued by the configured root",
        "Directory 6 signed by a gd.gov.ca certificate of the attacker's root.",
    )
    root = directory_to_element(newer)
    base.signature_of(root, pki.office_self_signed, base.Shape())
    directory(
        "dir-signed-self-signed.xml",
        "certificates",
        root,
        "TrustError",
        "certificate is self-signed",
        "Directory 6 signed with a self-signed certificate.",
    )
    redirected = sign_directory(newer, pki.authority.signer).replace(
        b'smtp="127.0.0.1:2602"', b'smtp="203.0.113.9:25"', 1
    )
    assert b"203.0.113.9" in redirected
    directory(
        "dir-tampered-endpoint.xml",
        "directory-untrusted",
        redirected,
        "SignatureError",
        DIGEST_CHANGED,
        "Directory 6 with gd-hub's SMTP endpoint redirected to an attacker after signing.",
    )
    root = base.parse(sign_directory(newer, pki.authority.signer))
    root.append(copy.deepcopy(root[-1]))
    directory(
        "dir-two-signatures.xml",
        "signature-wrapping",
        root,
        "ConfigError",
        "Element '{http://www.w3.org/2000/09/xmldsig#}Signature': This element is not expected",
        "Directory 6 with its signature twice (the schema allows one).",
    )
    root = directory_to_element(newer)
    base.signature_of(root, pki.authority, base.Shape(digest=base.SHA1))
    directory(
        "dir-digest-sha1.xml",
        "algorithm-downgrade",
        root,
        "SignatureError",
        f"digest algorithm {base.SHA1} is not accepted",
        "Directory 6 signed by the authority with a SHA-1 digest.",
    )
    signed = sign_directory(newer, pki.authority.signer)
    cut = signed.index(b"?>") + 2
    directory(
        "dir-doctype.xml",
        "dtd-entities",
        signed[:cut] + b"\n<!DOCTYPE dir:Directory>" + signed[cut:],
        "XmlInputError",
        DOCTYPE_REFUSED,
        "A DOCTYPE before a signed directory.",
    )
    directory(
        "dir-not-a-directory.xml",
        "directory-untrusted",
        c.envelope.envelope_xml,
        "ConfigError",
        "not a gwexchange directory",
        "An envelope offered as a directory.",
    )
    unknown_zone = signed.replace("内网".encode(), "暗网".encode())
    directory(
        "dir-unknown-zone.xml",
        "directory-untrusted",
        unknown_zone,
        "ConfigError",
        "not a valid directory",
        "A zone no policy knows (暗网).",
    )
    directory(
        "dir-invalid-utf8.xml",
        "invalid-utf8",
        signed.replace("内网".encode(), "内网".encode()[:-1], 1),
        "XmlInputError",
        INVALID_BYTES,
        "A zone name cut inside its last UTF-8 sequence.",
    )
