"""Documents whose content is not what was signed, or not where the verifier looks: content changed or added under
a valid signature, XML Signature Wrapping (XSW 1–8), signature blocks moved, copied or interleaved with the
content, namespace prefixes rebound."""

from __future__ import annotations

import copy

from lxml import etree

from .base import (
    DIGEST_CHANGED,
    DS,
    DS_NS,
    EVIL_NS,
    EVIL_PARAGRAPH,
    EVIL_TITLE,
    GW,
    GW_NS,
    NOT_SIGNED,
    OFFICE,
    ORDER_BROKEN,
    SIG_OUTSIDE,
    SIGNATURE_CHILDREN,
    SIGNED_AT,
    TIME,
    blocks_copy,
    evil_content,
    first,
    signature_blocks,
    without_blocks,
)
from .document_corpus import Context


def content_attacks(c: Context) -> None:
    """Unsigned, wrong root, content changed."""
    draft, signed, add, signed_copy = c.draft, c.signed, c.add, c.signed_copy
    title_bytes = c.title.encode("utf-8")
    add("unsigned", draft, "SignatureError", NOT_SIGNED, "The unsigned draft of the notice.")
    wrapper = etree.Element("{urn:attacker:evil}Envelope", nsmap={"evil": EVIL_NS})
    wrapper.append(signed_copy())
    add(
        "wrapper-root",
        wrapper,
        "DocumentError",
        "根元素应为 gw:Document",
        "The valid signed notice wrapped in a foreign root element.",
    )
    add(
        "title-one-byte",
        signed.replace(title_bytes, title_bytes[:-1] + bytes([title_bytes[-1] ^ 0x01]), 1),
        "SignatureError",
        DIGEST_CHANGED,
        "One byte of the Title changed (the last byte of a UTF-8 character, so the text stays valid).",
    )
    root = signed_copy()
    first(root, GW + "Signing").set("time", "2026-11-19T08:00:00Z")
    add(
        "signing-time-changed",
        root,
        "SignatureError",
        DIGEST_CHANGED,
        "The signing time in the Signing element moved a day back after signing (it is covered by the signature).",
    )
    root = signed_copy()
    first(root, GW + "Title").addprevious(copy.deepcopy(first(root, GW + "Title")))
    first(root, GW + "Title").text = EVIL_TITLE
    add(
        "duplicate-title",
        root,
        "SignatureError",
        DIGEST_CHANGED,
        "A second, forged Title inserted before the signed one (a reader taking the first sees the forgery).",
    )
    root = signed_copy()
    evil_body = copy.deepcopy(first(root, GW + "Body"))
    first(evil_body, GW + "P").text = EVIL_PARAGRAPH
    first(root, GW + "Body").addprevious(evil_body)
    add("duplicate-body", root, "SignatureError", DIGEST_CHANGED, "A forged Body inserted before the signed one.")
    root = signed_copy()
    signature_blocks(root)[-1].tail = EVIL_PARAGRAPH
    add(
        "text-after-signature",
        root,
        "SignatureError",
        DIGEST_CHANGED,
        "Text appended after </ds:Signature>: the enveloped transform keeps it in the digested document.",
    )
    root = signed_copy()
    first(root, GW + "Body").find(GW + "P").text = None
    first(root, GW + "Body").find(GW + "P").append(
        etree.fromstring(
            b'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file:///etc/passwd" parse="text"/>'
        )
    )
    add(
        "xinclude",
        root,
        "SignatureError",
        DIGEST_CHANGED,
        "An XInclude of file:///etc/passwd in the first paragraph: never processed, it is only a changed document.",
    )


def wrapping_attacks(c: Context) -> None:
    """XML Signature Wrapping (Somorovsky et al. 2012, "On Breaking SAML"), adapted."""
    original, add, signed_copy = c.original, c.add, c.signed_copy
    # Our only reference is URI="" (the whole document) and the signature must be a trailing child of the
    # document element, so the ID-based moves of SAML become: attacker content at the root, the signed original
    # (or its signature) moved somewhere a careless verifier would still find it.
    root = evil_content(original)
    signing, signature = blocks_copy(original)
    signature.append(without_blocks(original))
    root.extend([signing, signature])
    add(
        "xsw1-original-inside-signature",
        root,
        "SignatureError",
        SIGNATURE_CHILDREN + " SignedInfo, SignatureValue, KeyInfo, Document",
        "XSW1: forged document at the root carrying the original Signing and Signature; the signed original "
        "sits inside ds:Signature after KeyInfo.",
    )
    root = evil_content(original)
    root.append(without_blocks(original))
    root.extend(blocks_copy(original))
    add(
        "xsw2-original-before-signature",
        root,
        "SignatureError",
        DIGEST_CHANGED,
        "XSW2: forged document at the root; the signed original is a sibling just before the copied signature.",
    )
    root = signed_copy()
    root.insert(0, evil_content(original))
    add(
        "xsw3-forged-document-first",
        root,
        "SignatureError",
        DIGEST_CHANGED,
        "XSW3: a forged gw:Document inserted as the first child of the signed original (readers of the first "
        "gw:Document / gw:Title see the forgery).",
    )
    root = evil_content(original)
    root.append(signed_copy())
    root.extend(blocks_copy(original))
    add(
        "xsw4-forged-wraps-original",
        root,
        "SignatureError",
        SIG_OUTSIDE,
        "XSW4: the forged document wraps the whole signed original (with its signature) and repeats the "
        "original's signature block at its end.",
    )
    root = evil_content(original)
    root.extend(blocks_copy(original))
    root.append(without_blocks(original))
    add(
        "xsw5-original-after-signature",
        root,
        "SignatureError",
        NOT_SIGNED,
        "XSW5: forged document with the copied signature; the signed original appended after the signature.",
    )
    root = evil_content(original)
    signing, signature = blocks_copy(original)
    etree.SubElement(signature, DS + "Object").append(signed_copy())
    root.extend([signing, signature])
    add(
        "xsw6-signed-original-in-object",
        root,
        "SignatureError",
        SIG_OUTSIDE,
        "XSW6: forged document with a copied signature whose ds:Object holds the signed original with its own "
        "signature.",
    )
    root = evil_content(original)
    etree.SubElement(root, "{urn:attacker:ext}Extensions", nsmap={"ext": "urn:attacker:ext"}).append(
        without_blocks(original)
    )
    root.extend(blocks_copy(original))
    add(
        "xsw7-original-in-extensions",
        root,
        "SignatureError",
        DIGEST_CHANGED,
        "XSW7: forged document; the signed original hidden in a foreign Extensions element, signature copied.",
    )
    root = evil_content(original)
    signing, signature = blocks_copy(original)
    etree.SubElement(signature, DS + "Object").append(without_blocks(original))
    root.extend([signing, signature])
    add(
        "xsw8-original-in-object",
        root,
        "SignatureError",
        SIGNATURE_CHILDREN + " SignedInfo, SignatureValue, KeyInfo, Object",
        "XSW8: forged document with the copied signature; the signed original (without signature) in ds:Object.",
    )
    root = signed_copy()
    etree.SubElement(signature_blocks(root)[-1], DS + "Object").append(evil_content(original))
    add(
        "unsigned-object-in-valid-signature",
        root,
        "SignatureError",
        SIGNATURE_CHILDREN + " SignedInfo, SignatureValue, KeyInfo, Object",
        "The valid signed notice, untouched, with a forged document in a ds:Object appended to its Signature: "
        "the digest and signature value still verify, only the profile refuses the unsigned Object.",
    )


def placement_attacks(c: Context) -> None:
    """Where the signature sits."""
    original, add, signed_copy = c.original, c.add, c.signed_copy
    root = signed_copy()
    body = first(root, GW + "Body")
    for element in signature_blocks(root):
        body.append(element)
    add(
        "signature-inside-body",
        root,
        "SignatureError",
        NOT_SIGNED,
        "The Signing and Signature elements moved inside the Body (the enveloped transform would still remove "
        "the signature wherever it is).",
    )
    root = signed_copy()
    first(root, GW + "Body").append(copy.deepcopy(signature_blocks(root)[-1]))
    add(
        "signature-copy-inside-body",
        root,
        "SignatureError",
        SIG_OUTSIDE,
        "A second copy of the valid signature inside the Body, the original block left in place.",
    )
    root = signed_copy()
    for i, element in enumerate(signature_blocks(root)):
        root.insert(i, element)
    add(
        "signature-before-content",
        root,
        "SignatureError",
        NOT_SIGNED,
        "The signature block moved in front of the content (first children of the document element).",
    )
    root = signed_copy()
    anchor = first(root, GW + "SignatureName")
    for element in signature_blocks(root):
        anchor.addprevious(element)
    add(
        "signature-in-the-middle",
        root,
        "SignatureError",
        NOT_SIGNED,
        "The signature block moved between Body and SignatureName: it is no longer last.",
    )
    root = signed_copy()
    note = etree.SubElement(root, GW + "Note")
    note.text = EVIL_PARAGRAPH
    add(
        "content-after-signature",
        root,
        "SignatureError",
        NOT_SIGNED,
        "A forged Note appended after the signature block.",
    )
    root = signed_copy()
    root.append(copy.deepcopy(signature_blocks(root)[-1]))
    add(
        "signature-duplicated",
        root,
        "SignatureError",
        NOT_SIGNED,
        "Two identical ds:Signature elements after one Signing element.",
    )
    root = signed_copy()
    root.extend(blocks_copy(original))
    add(
        "signature-block-duplicated",
        root,
        "SignatureError",
        ORDER_BROKEN,
        "The whole signature block (Signing + Signature) repeated: the second copy does not cover the first.",
    )
    root = signed_copy()
    root.insert(0, copy.deepcopy(first(root, GW + "Signing")))
    add(
        "signing-element-outside-blocks",
        root,
        "SignatureError",
        "a Signing element appears outside the signature blocks",
        "An extra Signing element at the start of the document.",
    )
    root = signed_copy()
    signing = signature_blocks(root)[0]
    signing.addnext(etree.Element(GW + "Signing", department=OFFICE, time=SIGNED_AT.strftime(TIME)))
    add(
        "signing-element-doubled",
        root,
        "SignatureError",
        "a Signing element appears outside the signature blocks",
        "Two Signing elements in front of one Signature.",
    )


def namespace_attacks(c: Context) -> None:
    """Namespace tricks."""
    signed, add, signed_copy = c.signed, c.add, c.signed_copy
    add(
        "gw-prefix-rebound",
        signed.replace(b'xmlns:gw="' + GW_NS.encode() + b'"', b'xmlns:gw="urn:attacker:gongwen"', 1),
        "DocumentError",
        "根元素应为 gw:Document",
        "The gw prefix bound to another namespace on the document element: same text, other elements.",
    )
    root = signed_copy()
    evil_title = etree.Element("{urn:attacker:gongwen}Title", nsmap={"gw": "urn:attacker:gongwen"})
    evil_title.text = EVIL_TITLE
    first(root, GW + "Title").addprevious(evil_title)
    add(
        "gw-prefix-rebound-inner",
        root,
        "SignatureError",
        DIGEST_CHANGED,
        "A forged <gw:Title xmlns:gw='urn:attacker:gongwen'> before the real Title: same prefix, other namespace "
        "(fools readers that match on the prefixed name).",
    )
    root = signed_copy()
    evil_title = etree.Element(GW + "Title", nsmap={None: GW_NS})
    evil_title.text = EVIL_TITLE
    first(root, GW + "Title").addprevious(evil_title)
    add(
        "default-namespace-title",
        root,
        "SignatureError",
        DIGEST_CHANGED,
        "A forged <Title xmlns='urn:gwexchange:document:1'> (default namespace, no prefix) before the real Title.",
    )
    unprefixed = signed.replace(b"<gw:", b"<").replace(b"</gw:", b"</").replace(b"xmlns:gw=", b"xmlns=")
    add(
        "default-namespace-document",
        unprefixed,
        "SignatureError",
        DIGEST_CHANGED,
        "The document rewritten with a default namespace instead of the gw prefix: same names, but exclusive C14N "
        "keeps prefixes, so it is not what was signed.",
    )
    add(
        "ds-prefix-rebound",
        signed.replace(b'xmlns:ds="' + DS_NS.encode() + b'"', b'xmlns:ds="urn:attacker:dsig"', 1),
        "SignatureError",
        NOT_SIGNED,
        "The ds prefix of the Signature bound to another namespace: it is no ds:Signature at all.",
    )
    add(
        "ds-prefix-rebound-reference",
        signed.replace(b'<ds:Reference URI="">', b'<ds:Reference xmlns:ds="urn:attacker:dsig" URI="">', 1),
        "SignatureError",
        "ds:SignedInfo must contain exactly CanonicalizationMethod, SignatureMethod, Reference",
        "The ds prefix re-bound to another namespace on ds:Reference only.",
    )
    root = signed_copy()
    signature = signature_blocks(root)[-1]
    rebuilt = etree.fromstring(etree.tostring(signature).replace(b"ds:", b"").replace(b"xmlns:ds=", b"xmlns="))
    signature.addnext(rebuilt)
    root.remove(signature)
    add(
        "signature-default-namespace",
        root,
        "SignatureError",
        "signature value does not verify",
        "The Signature rewritten with the XML-DSig namespace as default namespace (no ds: prefix): the digest "
        "still matches, but the canonical SignedInfo is not what was signed.",
    )
