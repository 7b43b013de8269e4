"""More documents for ``verify_document``: duplicate IDs, invalid UTF-8 and other encodings, too many references or
transforms, entity blow-ups."""

from __future__ import annotations

import copy
from collections.abc import Callable

from lxml import etree

from . import base
from .base import DOCTYPE_REFUSED, DS, INVALID_BYTES, URI_REFUSED, VECTORS
from .exchange_common import Context


def document_attacks(c: Context) -> None:  # noqa: PLR0915 - one corpus section
    """More documents: duplicate IDs, invalid UTF-8, too many references or transforms, entity blow-ups."""
    add, office = c.add, c.pki.office
    draft = (VECTORS / "notice.draft.xml").read_bytes()
    signed = (VECTORS / "notice.signed.xml").read_bytes()

    def signed_by_shape(shape: base.Shape, change: Callable[[etree._Element], None] | None = None) -> etree._Element:
        root = base.parse(draft)
        if change is not None:
            change(root)
        base.sign_shape(root, office, shape)
        return root

    # Duplicate IDs: an ID reference resolves to whichever element a verifier finds first.
    def two_bodies(root: etree._Element) -> None:
        body = base.first(root, base.GW + "Body")
        body.set("Id", "content")
        forged = copy.deepcopy(body)
        base.first(forged, base.GW + "P").text = base.EVIL_PARAGRAPH
        body.addprevious(forged)

    def id_digest(target: str) -> Callable[[etree._Element, etree._Element], bytes]:
        def digest(root: etree._Element, signature: etree._Element) -> bytes:
            found = [
                e for e in root.iter() if target in (e.get("Id"), e.get("{http://www.w3.org/XML/1998/namespace}id"))
            ]
            return base.c14n(found[-1])  # the signed one is the second: a verifier taking the first sees the forgery

        return digest

    add(
        "doc-duplicate-id-body.xml",
        "duplicate-ids",
        "document",
        signed_by_shape(
            base.Shape(uri="#content", transforms=((base.EXC_C14N, None),), digest_input=id_digest("content")),
            two_bodies,
        ),
        "SignatureError",
        URI_REFUSED,
        'Two Body elements with Id="content" (the forged one first) and a signature whose reference #content '
        "covers the second: duplicate-ID wrapping.",
    )

    def two_xml_ids(root: etree._Element) -> None:
        paragraph = base.first(root, f"{base.GW}Body/{base.GW}P")
        paragraph.set("{http://www.w3.org/XML/1998/namespace}id", "p1")
        forged = copy.deepcopy(paragraph)
        forged.text = base.EVIL_PARAGRAPH
        paragraph.addprevious(forged)

    add(
        "doc-duplicate-xml-id.xml",
        "duplicate-ids",
        "document",
        signed_by_shape(
            base.Shape(uri="#p1", transforms=((base.EXC_C14N, None),), digest_input=id_digest("p1")), two_xml_ids
        ),
        "SignatureError",
        URI_REFUSED,
        'Two paragraphs with xml:id="p1" (libxml2 keeps both without complaint) and a reference #p1 to the second.',
    )
    root = base.parse(signed)
    forged_signature = copy.deepcopy(base.signature_blocks(root)[-1])
    forged_signature.set("Id", "node-signature")
    base.signature_blocks(root)[-1].set("Id", "node-signature")
    base.first(root, base.GW + "Body").append(forged_signature)
    add(
        "doc-duplicate-id-signature.xml",
        "duplicate-ids",
        "document",
        root,
        "SignatureError",
        base.SIG_OUTSIDE,
        "A copy of the valid signature with the same Id planted in the Body, for a verifier that looks signatures "
        "up by Id.",
    )

    # Invalid UTF-8.
    title = base.parse(signed).findtext(base.GW + "Title")
    assert title is not None
    title_bytes = title.encode("utf-8")
    cut = signed.index(title_bytes) + 6

    def utf8(name: str, bad: bytes, description: str, message: str = INVALID_BYTES) -> None:
        add(
            name,
            "invalid-utf8",
            "document",
            signed[:cut] + bad + signed[cut:],
            "XmlInputError",
            message,
            description,
        )

    utf8("doc-utf8-invalid-byte.xml", b"\xff", "A 0xFF byte (never valid in UTF-8) in the signed Title.")
    utf8("doc-utf8-overlong-slash.xml", b"\xc0\xaf", "An overlong encoding of '/' (C0 AF) in the Title.")
    utf8("doc-utf8-surrogate.xml", b"\xed\xa0\x80", "A UTF-16 surrogate (U+D800) encoded in UTF-8 (CESU) in the Title.")
    utf8("doc-utf8-truncated-sequence.xml", b"\xe5\xb9", "A three-byte sequence cut after two bytes in the Title.")
    utf8("doc-utf8-beyond-unicode.xml", b"\xf4\x90\x80\x80", "A four-byte sequence beyond U+10FFFF in the Title.")
    utf8(
        "doc-utf8-nul.xml",
        b"\x00",
        "A NUL byte in the Title.",
        "malformed XML: Invalid character: Char 0x0 out of allowed range",
    )
    utf8(
        "doc-utf8-noncharacter.xml",
        "\ufffe".encode(),
        "The noncharacter U+FFFE in the Title.",
        "malformed XML: PCDATA invalid Char value 65534",
    )
    latin = signed.replace(b'encoding="UTF-8"', b'encoding="ISO-8859-1"', 1)
    latin = latin[:cut] + "é".encode("latin-1") + latin[cut:]
    add(
        "doc-utf8-latin1-declared.xml",
        "invalid-utf8",
        "document",
        latin,
        "XmlInputError",
        INVALID_BYTES,
        "Declared ISO-8859-1 with a Latin-1 é in the Title: the parser reads UTF-8 whatever is declared.",
    )
    gb = signed.replace(b'encoding="UTF-8"', b'encoding="GB18030"', 1)
    gb = gb.replace(title_bytes, title.encode("gb18030"), 1)
    add(
        "doc-gb18030-declared.xml",
        "invalid-utf8",
        "document",
        gb,
        "XmlInputError",
        INVALID_BYTES,
        "The signed notice transcoded to GB18030 with its declaration changed: the same characters in another "
        "encoding are refused, not reinterpreted.",
    )

    # Too many references or transforms.
    def many_references(signature: etree._Element) -> None:
        signed_info = base.first(signature, DS + "SignedInfo")
        reference = base.first(signed_info, DS + "Reference")
        for _ in range(99):
            reference.addnext(copy.deepcopy(reference))

    add(
        "doc-references-100.xml",
        "references-transforms",
        "document",
        signed_by_shape(base.Shape(before_signing=many_references)),
        "SignatureError",
        "ds:SignedInfo must contain exactly CanonicalizationMethod, SignatureMethod, Reference",
        "A signature with 100 identical references (work amplification: each would be digested).",
    )
    transforms = (*((base.ENVELOPED, None) for _ in range(99)), (base.EXC_C14N, None))
    add(
        "doc-transforms-100.xml",
        "references-transforms",
        "document",
        signed_by_shape(base.Shape(transforms=transforms)),
        "SignatureError",
        "ds:Transforms must contain exactly Transform, Transform",
        "A reference with 100 transforms (99 enveloped-signature, then exclusive C14N).",
    )
    c14n_chain = tuple((base.EXC_C14N, None) for _ in range(1000))
    add(
        "doc-transforms-1000-c14n.xml",
        "references-transforms",
        "document",
        signed_by_shape(base.Shape(transforms=((base.ENVELOPED, None), *c14n_chain))),
        "SignatureError",
        "ds:Transforms must contain exactly Transform, Transform",
        "A reference with enveloped-signature then 1,000 canonicalizations: each one a pass over the document.",
    )

    # Entity blow-ups and DOCTYPE disguises.
    declaration_end = signed.index(b"?>\n") + 3
    head, body = signed[:declaration_end], signed[declaration_end:]
    blob = b"A" * 50_000
    quadratic = (
        head
        + b'<!DOCTYPE gw:Document [<!ENTITY a "'
        + blob
        + b'">]>\n'
        + body.replace(title_bytes, title_bytes + b"&a;" * 5_000, 1)
    )
    add(
        "doc-quadratic-blowup.xml",
        "dtd-entities",
        "document",
        quadratic,
        "XmlInputError",
        DOCTYPE_REFUSED,
        "Quadratic blow-up: one 50 kB entity referenced 5,000 times in the Title (250 MB once expanded).",
    )
    add(
        "doc-doctype-after-bom.xml",
        "dtd-entities",
        "document",
        b"\xef\xbb\xbf" + head + b'<!DOCTYPE gw:Document [<!ENTITY t "x">]>\n' + body,
        "XmlInputError",
        DOCTYPE_REFUSED,
        "A UTF-8 byte-order mark, then an internal DTD.",
    )
    assert b'code="gd.gov.office"' in body
    add(
        "doc-entity-in-attribute.xml",
        "dtd-entities",
        "document",
        head
        + b'<!DOCTYPE gw:Document [<!ENTITY d "gd.gov.czt">]>\n'
        + body.replace(b'code="gd.gov.office"', b'code="&d;"', 1),
        "XmlInputError",
        DOCTYPE_REFUSED,
        "An entity that would rewrite a department code in an attribute.",
    )
    add(
        "doc-doctype-lowercase.xml",
        "xml-form",
        "document",
        head + b"<!doctype gw:Document>\n" + body,
        "XmlInputError",
        "malformed XML: StartTag: invalid element name",
        "A lower-case <!doctype>: not XML, but an HTML-minded scanner's blind spot.",
    )
    add(
        "doc-cdata-doctype.xml",
        "dtd-entities",
        "document",
        signed.replace(
            title_bytes, title_bytes + b"<![CDATA[<!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]>]]>", 1
        ),
        "XmlInputError",
        DOCTYPE_REFUSED,
        "A DOCTYPE text inside CDATA in the Title: harmless as data, refused all the same by the byte scan (the "
        "scan errs on the side of refusing).",
    )
