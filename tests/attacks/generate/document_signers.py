"""Documents signed by the wrong key or in the wrong blocks: certificates that must not be trusted (self-signed,
another root, expired, revoked, CA, wrong usage), Signing elements that lie, joint signatures stripped, swapped
or out of order, and validly signed content the schema refuses."""

from __future__ import annotations

import copy

from lxml import etree

from .base import (
    CZT,
    EVIL_NS,
    EVIL_PARAGRAPH,
    EVIL_TITLE,
    GW,
    GXT,
    NOT_SIGNED,
    ORDER_BROKEN,
    SECOND_SIGNED_AT,
    TIME,
    Holder,
    first,
    parse,
    sign_shape,
    signature_blocks,
)
from .document_corpus import Context


def certificate_attacks(c: Context) -> None:
    """Certificates: whose key signed."""
    pki, add, fresh, custom = c.pki, c.add, c.fresh, c.custom

    def forged(signer: Holder, **kw: str) -> etree._Element:
        root = fresh()
        first(root, GW + "Title").text = EVIL_TITLE
        sign_shape(root, signer, **kw)
        return root

    add(
        "cert-self-signed",
        forged(pki.self_signed_office),
        "TrustError",
        "certificate is self-signed; only certificates issued by the root are trusted",
        "A forged notice correctly signed with an attacker's key and a self-signed certificate naming gd.gov.office.",
    )
    add(
        "cert-attacker-root",
        forged(pki.attacker_office),
        "TrustError",
        "certificate is not issued by the configured root",
        "A forged notice signed with a gd.gov.office certificate from the attacker's own root.",
    )
    add(
        "cert-impostor-root",
        forged(pki.impostor_office),
        "TrustError",
        "certificate's signature does not verify with the configured root",
        "A forged notice signed with a certificate from an impostor root that copies the trusted root's name.",
    )
    add(
        "cert-root-itself",
        forged(pki.root),
        "TrustError",
        "certificate is self-signed",
        "A forged notice signed with the root key, the root certificate in KeyInfo.",
    )
    add(
        "cert-ca-flag",
        forged(pki.ca_flag_office),
        "TrustError",
        "an end-entity certificate must say it is not a CA",
        "Signed with a certificate the root issued with basicConstraints CA=true (naming gd.gov.office).",
    )
    add(
        "cert-from-sub-ca",
        forged(pki.sub_ca_office),
        "TrustError",
        "certificate is not issued by the configured root",
        "Signed with a gd.gov.office certificate issued by a sub-CA (only direct issuance by the root counts).",
    )
    add(
        "cert-expired",
        custom(signer=pki.office_expired),
        "TrustError",
        "is not valid at 2026-11-20T08:00:00Z: valid 2026-01-01T00:00:00Z to 2026-03-01T00:00:00Z",
        "The notice signed on 2026-11-20 with gd.gov.office's certificate that expired on 2026-03-01.",
    )
    add(
        "cert-revoked",
        custom(signer=pki.office_revoked),
        "TrustError",
        "was revoked on 2026-06-01T00:00:00Z (keyCompromise)",
        "The notice signed with gd.gov.office's certificate revoked for keyCompromise on 2026-06-01.",
    )
    add(
        "cert-revoked-backdated",
        custom(signer=pki.office_revoked, time="2026-05-01T08:00:00Z"),
        "TrustError",
        "was revoked on 2026-06-01T00:00:00Z (keyCompromise)",
        "Signed with the compromised key and backdated before the revocation: keyCompromise voids every "
        "signature whatever time it claims.",
    )
    add(
        "cert-encryption",
        custom(signer=pki.office_encryption),
        "TrustError",
        "certificate of gd.gov.office is not a signing certificate (key usage)",
        "Signed with gd.gov.office's encryption (key agreement) certificate.",
    )
    add(
        "cert-node",
        custom(signer=pki.node),
        "TrustError",
        "certificate of gd-hub.gov is a node certificate, not a department one",
        "The exchange node's key signs the notice as gd.gov.office (Signing names gd.gov.office).",
    )


def signing_attacks(c: Context) -> None:
    """The Signing element."""
    pki, signed, add, signed_copy, custom = c.pki, c.signed, c.add, c.signed_copy, c.custom
    add(
        "signing-department-mismatch",
        custom(department=CZT),
        "SignatureError",
        ORDER_BROKEN,
        "Signed by gd.gov.office with a Signing element that names gd.gov.czt.",
    )
    add(
        "signing-by-other-department",
        custom(signer=pki.czt, department=CZT),
        "SignatureError",
        "signatures by gd.gov.czt do not follow the issuing departments gd.gov.office",
        "gd.gov.czt, a trusted department but not the issuer, signs the office's notice in its own name.",
    )
    add(
        "signing-time-future",
        custom(time="2027-01-01T00:00:00Z"),
        "SignatureError",
        "claims a future time 2027-01-01T00:00:00Z",
        "Correctly signed, claiming a signing time in 2027 (after the verifier's clock).",
    )
    add(
        "signing-time-malformed",
        custom(time="2026-11-20T16:00:00+08:00"),
        "SignatureError",
        "signing time '2026-11-20T16:00:00+08:00' is not of the form",
        "Correctly signed, with a signing time not in the form YYYY-MM-DDThh:mm:ssZ.",
    )
    root = signed_copy()
    root.remove(signature_blocks(root)[0])
    add(
        "signing-element-missing",
        root,
        "SignatureError",
        NOT_SIGNED,
        "The Signing element removed: the Signature alone is no signature block.",
    )
    appended = parse(signed)
    sign_shape(appended, pki.czt, department=CZT, time=SECOND_SIGNED_AT.strftime(TIME))
    add(
        "extra-signature-by-non-issuer",
        appended,
        "SignatureError",
        "signatures by gd.gov.office, gd.gov.czt do not follow the issuing departments gd.gov.office",
        "The valid notice co-signed afterwards by gd.gov.czt, which is not an issuer.",
    )


def joint_attacks(c: Context) -> None:
    """Joint documents."""
    pki, joint, joint_draft, add = c.pki, c.joint, c.joint_draft, c.add
    joint_root = parse(joint)
    root = copy.deepcopy(joint_root)
    for element in signature_blocks(root)[2:]:
        root.remove(element)
    add(
        "joint-second-signature-stripped",
        root,
        "SignatureError",
        "the document is not fully signed: gd.gov.gxt has not signed yet",
        "The joint notice with the second department's (gd.gov.gxt) signature block removed.",
    )
    root = copy.deepcopy(joint_root)
    for element in signature_blocks(root)[:2]:
        root.remove(element)
    add(
        "joint-first-signature-stripped",
        root,
        "SignatureError",
        ORDER_BROKEN,
        "The joint notice with the lead department's (gd.gov.czt) block removed: gxt's signature covered it.",
    )
    root = copy.deepcopy(joint_root)
    blocks = signature_blocks(root)
    for element in blocks:
        root.remove(element)
    root.extend(blocks[2:] + blocks[:2])
    add(
        "joint-blocks-swapped",
        root,
        "SignatureError",
        ORDER_BROKEN,
        "The two signature blocks of the joint notice in swapped order.",
    )
    root = parse(joint_draft)
    sign_shape(root, pki.czt, department=CZT)
    sign_shape(root, pki.czt, department=CZT, time=SECOND_SIGNED_AT.strftime(TIME))
    add(
        "joint-same-department-twice",
        root,
        "SignatureError",
        "signatures by gd.gov.czt, gd.gov.czt do not follow the issuing departments gd.gov.czt, gd.gov.gxt",
        "The joint notice signed twice by the lead department and never by gd.gov.gxt.",
    )
    root = parse(joint_draft)
    sign_shape(root, pki.czt, department=CZT)
    sign_shape(root, pki.gxt, department=GXT, time="2026-11-20T07:00:00Z")
    add(
        "joint-second-signed-earlier",
        root,
        "SignatureError",
        "gd.gov.gxt claims to have signed before gd.gov.czt",
        "The joint notice whose second signature claims a time before the first.",
    )
    root = parse(joint_draft)
    sign_shape(root, pki.gxt, department=GXT)
    sign_shape(root, pki.czt, department=CZT, time=SECOND_SIGNED_AT.strftime(TIME))
    add(
        "joint-wrong-order",
        root,
        "SignatureError",
        "signatures by gd.gov.gxt, gd.gov.czt do not follow the issuing departments gd.gov.czt, gd.gov.gxt",
        "The joint notice signed by the second department first.",
    )


def schema_attacks(c: Context) -> None:
    """Validly signed, but not a valid 公文."""
    office, add, fresh = c.office, c.add, c.fresh
    root = fresh()
    first(root, GW + "Title").addnext(copy.deepcopy(first(root, GW + "Title")))
    sign_shape(root, office)
    add(
        "signed-two-titles",
        root,
        "DocumentError",
        "不符合公文格式规范：Unexpected child with tag 'gw:Title'",
        "A document with two Title elements, correctly signed by gd.gov.office: the schema still refuses it.",
    )
    root = fresh()
    etree.SubElement(root, "{urn:attacker:evil}Payload", nsmap={"evil": EVIL_NS}).text = EVIL_PARAGRAPH
    sign_shape(root, office)
    add(
        "signed-foreign-element",
        root,
        "DocumentError",
        "不符合公文格式规范：Unexpected child with tag 'evil:Payload'",
        "A foreign element in the document, correctly signed by gd.gov.office: the schema refuses it.",
    )
