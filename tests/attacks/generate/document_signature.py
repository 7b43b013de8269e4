"""Documents whose ds:Signature leaves our profile: the reference (ID, XPointer, external URIs, two references),
canonicalizations and transforms (XSLT, XPath, too many, the wrong order), downgraded or mismatched algorithms
(SHA-1, MD5, HMAC, RSA-PSS), the signature value, and KeyInfo."""

from __future__ import annotations

import copy
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from lxml import etree

from .base import (
    C14N11,
    DS,
    DS11,
    DS11_NS,
    DS_NS,
    ECDSA_SHA1,
    ECDSA_SHA256,
    ENVELOPED,
    EVIL_NS,
    EVIL_TITLE,
    EXC_C14N,
    EXC_C14N_COMMENTS,
    GW,
    HMAC_SHA1,
    HMAC_SHA256,
    INCL_C14N,
    MD5,
    NO_PARAMETERS,
    RSA_PSS,
    RSA_SHA1,
    RSA_SHA256,
    SHA1,
    SIGNATURE_CHILDREN,
    URI_REFUSED,
    XPATH,
    XPATH_FILTER2,
    XSLT,
    Hook,
    Shape,
    b64,
    c14n,
    first,
    parse,
    sign_shape,
    signature_blocks,
    signature_value,
)
from .document_corpus import Context


def reference_attacks(c: Context) -> None:
    """The reference."""
    office, add, fresh, custom = c.office, c.add, c.fresh, c.custom

    def digest_element(element_path: str) -> Callable[[etree._Element, etree._Element], bytes]:
        def over(root: etree._Element, signature: etree._Element) -> bytes:
            return c14n(first(root, element_path))

        return over

    root = fresh()
    root.set("Id", "gwdoc")
    sign_shape(root, office, Shape(uri="#gwdoc"))
    add(
        "reference-id-root",
        root,
        "SignatureError",
        URI_REFUSED,
        "Reference URI='#gwdoc' to an Id on the document element, correctly signed with the office's key.",
    )
    root = fresh()
    first(root, GW + "Body").set("Id", "body")
    first(root, GW + "Title").text = EVIL_TITLE
    sign_shape(
        root, office, Shape(uri="#body", transforms=((EXC_C14N, None),), digest_input=digest_element(GW + "Body"))
    )
    add(
        "reference-id-body",
        root,
        "SignatureError",
        URI_REFUSED,
        "Reference URI='#body' to an Id on the Body only: the Title is not covered and has been forged.",
    )
    root = fresh()
    first(root, GW + "Body").set("Id", "body")
    first(root, GW + "Title").text = EVIL_TITLE
    sign_shape(
        root,
        office,
        Shape(uri="#xpointer(id('body'))", transforms=((EXC_C14N, None),), digest_input=digest_element(GW + "Body")),
    )
    add(
        "reference-xpointer-id",
        root,
        "SignatureError",
        URI_REFUSED,
        "Reference URI=\"#xpointer(id('body'))\": a fragment reference to the Body only.",
    )
    add(
        "reference-xpointer-root",
        custom(Shape(uri="#xpointer(/)")),
        "SignatureError",
        URI_REFUSED,
        "Reference URI='#xpointer(/)' (the whole document, with comments) instead of URI=''.",
    )
    add(
        "reference-external-http",
        custom(
            Shape(
                uri="http://attacker.example/gongwen.xml",
                transforms=((EXC_C14N, None),),
                digest_input=lambda root, sig: b"remote content",
            )
        ),
        "SignatureError",
        URI_REFUSED,
        "Reference to an external http:// URI (SSRF, detached content).",
    )
    add(
        "reference-external-file",
        custom(
            Shape(
                uri="file:///etc/passwd",
                transforms=((EXC_C14N, None),),
                digest_input=lambda root, sig: b"root:x:0:0:root:/root:/bin/bash\n",
            )
        ),
        "SignatureError",
        URI_REFUSED,
        "Reference to file:///etc/passwd.",
    )
    add(
        "reference-without-uri",
        custom(Shape(uri=None)),
        "SignatureError",
        URI_REFUSED,
        "A Reference with no URI attribute (the application is supposed to know what it means).",
    )

    def type_attribute(signature: etree._Element) -> None:
        first(signature, f"{DS}SignedInfo/{DS}Reference").set("Type", "http://www.w3.org/2000/09/xmldsig#Object")

    add(
        "reference-type-attribute",
        custom(Shape(before_signing=type_attribute)),
        "SignatureError",
        "ds:Reference has attributes outside the profile: ['Type']",
        "A Type attribute on the Reference.",
    )

    def second_reference(signature: etree._Element) -> None:
        reference = first(signature, f"{DS}SignedInfo/{DS}Reference")
        extra = copy.deepcopy(reference)
        extra.set("URI", "#evil")
        reference.addnext(extra)

    add(
        "two-references",
        custom(Shape(before_signing=second_reference)),
        "SignatureError",
        "ds:SignedInfo must contain exactly CanonicalizationMethod, SignatureMethod, Reference; found "
        "CanonicalizationMethod, SignatureMethod, Reference, Reference",
        "SignedInfo with a second Reference (URI='#evil'), correctly signed.",
    )

    def extra_in_signed_info(signature: etree._Element) -> None:
        etree.SubElement(
            first(signature, DS + "SignedInfo"), "{urn:attacker:evil}Note", nsmap={"evil": EVIL_NS}
        ).text = "ignored"

    add(
        "extra-element-in-signedinfo",
        custom(Shape(before_signing=extra_in_signed_info)),
        "SignatureError",
        "ds:SignedInfo must contain exactly CanonicalizationMethod, SignatureMethod, Reference; found "
        "CanonicalizationMethod, SignatureMethod, Reference, Note",
        "A foreign element appended inside SignedInfo, correctly signed.",
    )

    def signed_info_id(signature: etree._Element) -> None:
        first(signature, DS + "SignedInfo").set("Id", "si")

    add(
        "signedinfo-attribute",
        custom(Shape(before_signing=signed_info_id)),
        "SignatureError",
        "ds:SignedInfo has attributes outside the profile: ['Id']",
        "An Id attribute on SignedInfo.",
    )


def algorithm_attacks(c: Context) -> None:
    """Algorithms."""
    office, office_rsa, add, fresh, custom = c.office, c.office_rsa, c.add, c.fresh, c.custom

    def child(local: str, text: str | None = None, ns: str = DS_NS, **attrs: str) -> Hook:
        def build(parent: etree._Element) -> None:
            etree.SubElement(parent, "{" + ns + "}" + local, attrs).text = text

        return build

    add(
        "c14n-inclusive",
        custom(Shape(c14n=INCL_C14N)),
        "SignatureError",
        f"canonicalization algorithm {INCL_C14N} is not accepted",
        "Inclusive C14N 1.0 as CanonicalizationMethod (in-scope namespaces leak into SignedInfo).",
    )
    add(
        "c14n-11",
        custom(Shape(c14n=C14N11)),
        "SignatureError",
        f"canonicalization algorithm {C14N11} is not accepted",
        "C14N 1.1 as CanonicalizationMethod.",
    )
    add(
        "c14n-with-comments",
        custom(Shape(c14n=EXC_C14N_COMMENTS)),
        "SignatureError",
        f"canonicalization algorithm {EXC_C14N_COMMENTS} is not accepted",
        "Exclusive C14N WithComments as CanonicalizationMethod.",
    )
    add(
        "transform-c14n-11",
        custom(Shape(transforms=((ENVELOPED, None), (C14N11, None)))),
        "SignatureError",
        f"transform algorithm {C14N11} is not accepted",
        "C14N 1.1 as the second transform.",
    )
    add(
        "transform-inclusive-c14n",
        custom(Shape(transforms=((ENVELOPED, None), (INCL_C14N, None)))),
        "SignatureError",
        f"transform algorithm {INCL_C14N} is not accepted",
        "Inclusive C14N 1.0 as the second transform.",
    )
    stylesheet = (
        b'<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">'
        b'<xsl:template match="/"><xsl:copy-of select="document(\'file:///etc/passwd\')"/>'
        b'<xsl:copy-of select="."/></xsl:template></xsl:stylesheet>'
    )

    def xslt(transform: etree._Element) -> None:
        transform.append(etree.fromstring(stylesheet))

    add(
        "transform-xslt",
        custom(Shape(transforms=((ENVELOPED, None), (XSLT, xslt)))),
        "SignatureError",
        "the transform " + NO_PARAMETERS,
        "An XSLT transform whose stylesheet reads file:///etc/passwd (code execution inside verification).",
    )
    add(
        "transform-xpath",
        custom(Shape(transforms=((XPATH, child("XPath", "not(ancestor-or-self::ds:Signature)")), (EXC_C14N, None)))),
        "SignatureError",
        "the transform " + NO_PARAMETERS,
        "An XPath transform not(ancestor-or-self::ds:Signature) instead of enveloped-signature (XPath runs inside "
        "verification: DoS and selection tricks).",
    )
    add(
        "transform-xpath-filter2",
        custom(
            Shape(
                transforms=(
                    (XPATH_FILTER2, child("XPath", "//ds:Signature", ns=XPATH_FILTER2, Filter="subtract")),
                    (EXC_C14N, None),
                )
            )
        ),
        "SignatureError",
        "the transform " + NO_PARAMETERS,
        "An XPath Filter 2.0 transform (subtract //ds:Signature) instead of enveloped-signature.",
    )
    add(
        "transform-exc-c14n-prefixlist",
        custom(
            Shape(
                transforms=(
                    (ENVELOPED, None),
                    (EXC_C14N, child("InclusiveNamespaces", ns=EXC_C14N, PrefixList="gw ds")),
                )
            )
        ),
        "SignatureError",
        "the transform " + NO_PARAMETERS,
        "Exclusive C14N with an InclusiveNamespaces PrefixList parameter.",
    )
    add(
        "transforms-three",
        custom(Shape(transforms=((ENVELOPED, None), (ENVELOPED, None), (EXC_C14N, None)))),
        "SignatureError",
        "ds:Transforms must contain exactly Transform, Transform; found Transform, Transform, Transform",
        "Three transforms (enveloped-signature twice).",
    )
    add(
        "transforms-swapped",
        custom(Shape(transforms=((EXC_C14N, None), (ENVELOPED, None)))),
        "SignatureError",
        "transforms must be exactly enveloped-signature then exclusive C14N",
        "The two allowed transforms in the wrong order.",
    )
    add(
        "transforms-only-enveloped",
        custom(Shape(transforms=((ENVELOPED, None),))),
        "SignatureError",
        "ds:Transforms must contain exactly Transform, Transform; found Transform",
        "Only the enveloped-signature transform (the default inclusive C14N applies).",
    )
    add(
        "digest-sha1",
        custom(Shape(digest=SHA1)),
        "SignatureError",
        f"digest algorithm {SHA1} is not accepted",
        "SHA-1 as DigestMethod, correctly computed and signed.",
    )
    add(
        "digest-md5",
        custom(Shape(digest=MD5)),
        "SignatureError",
        f"digest algorithm {MD5} is not accepted",
        "MD5 (xmldsig-more#md5) as DigestMethod, correctly computed and signed.",
    )
    add(
        "signature-ecdsa-sha1",
        custom(Shape(method=ECDSA_SHA1)),
        "SignatureError",
        f"signature algorithm {ECDSA_SHA1} is not accepted",
        "ECDSA-SHA1 SignatureMethod with the office's key.",
    )
    add(
        "signature-rsa-sha1",
        custom(Shape(method=RSA_SHA1), office_rsa),
        "SignatureError",
        f"signature algorithm {RSA_SHA1} is not accepted",
        "RSA-SHA1 SignatureMethod with the office's RSA key.",
    )
    add(
        "signature-rsa-pss",
        custom(Shape(method=RSA_PSS), office_rsa),
        "SignatureError",
        f"signature algorithm {RSA_PSS} is not accepted",
        "RSA-PSS (SHA-256, MGF1) with the office's RSA key.",
    )
    add(
        "signature-hmac-sha256",
        custom(Shape(method=HMAC_SHA256, hmac_key=office.der)),
        "SignatureError",
        f"signature algorithm {HMAC_SHA256} is not accepted",
        "HMAC-SHA256 keyed with the public certificate in KeyInfo (key confusion: anyone can compute it).",
    )

    def hmac_output_length(signature: etree._Element) -> None:
        method = first(signature, f"{DS}SignedInfo/{DS}SignatureMethod")
        etree.SubElement(method, DS + "HMACOutputLength").text = "0"

    root = custom(Shape(method=HMAC_SHA1, hmac_key=office.der, before_signing=hmac_output_length))
    signature_blocks(root)[-1].find(DS + "SignatureValue").text = ""
    add(
        "hmac-output-length-zero",
        root,
        "SignatureError",
        "the signature " + NO_PARAMETERS,
        "CVE-2009-0217: HMAC-SHA1 with HMACOutputLength 0 and an empty SignatureValue.",
    )
    add(
        "hmac-output-length-on-ecdsa",
        custom(Shape(before_signing=hmac_output_length)),
        "SignatureError",
        "the signature " + NO_PARAMETERS,
        "An HMACOutputLength parameter on the ECDSA-SHA256 SignatureMethod.",
    )
    # A correct ECDSA value over a SignedInfo labelled RSA-SHA256: only the key-type check can catch it.
    root = fresh()
    sign_shape(root, office)
    signature = signature_blocks(root)[-1]
    first(signature, f"{DS}SignedInfo/{DS}SignatureMethod").set("Algorithm", RSA_SHA256)
    signed_info = first(signature, DS + "SignedInfo")
    first(signature, DS + "SignatureValue").text = b64(signature_value(ECDSA_SHA256, office.key, c14n(signed_info)))
    add(
        "algorithm-rsa-with-ec-key",
        root,
        "SignatureError",
        "does not match the certificate's key type",
        "Algorithm confusion: SignatureMethod says RSA-SHA256, the certificate holds an EC key.",
    )
    root = fresh()
    sign_shape(root, office_rsa, Shape(method=RSA_SHA256))
    signature = signature_blocks(root)[-1]
    first(signature, f"{DS}SignedInfo/{DS}SignatureMethod").set("Algorithm", ECDSA_SHA256)
    first(signature, DS + "SignatureValue").text = b64(
        signature_value(RSA_SHA256, office_rsa.key, c14n(first(signature, DS + "SignedInfo")))
    )
    add(
        "algorithm-ecdsa-with-rsa-key",
        root,
        "SignatureError",
        "does not match the certificate's key type",
        "Algorithm confusion: SignatureMethod says ECDSA-SHA256, the certificate holds an RSA key.",
    )


def value_attacks(c: Context) -> None:
    """The signature value."""
    joint, original, office, add, signed_copy = c.joint, c.original, c.office, c.add, c.signed_copy

    def with_value(value: str, source: etree._Element | None = None) -> etree._Element:
        root = copy.deepcopy(source) if source is not None else signed_copy()
        signature_blocks(root)[-1].find(DS + "SignatureValue").text = value
        return root

    add(
        "signature-value-not-base64",
        with_value("!!not-base64!!"),
        "SignatureError",
        "ds:SignatureValue is not valid base64",
        "A SignatureValue that is not base64.",
    )
    add(
        "signature-value-zero",
        with_value(b64(bytes(64))),
        "SignatureError",
        "signature value does not verify",
        "ECDSA r = s = 0 (CVE-2022-21449, 'psychic signatures').",
    )
    add(
        "signature-value-short",
        with_value(b64(bytes(63))),
        "SignatureError",
        "ECDSA signature value has the wrong length",
        "A 63-byte ECDSA SignatureValue.",
    )
    add(
        "signature-value-der",
        with_value(b64(office.key.sign(b"x", ec.ECDSA(hashes.SHA256())))),
        "SignatureError",
        "ECDSA signature value has the wrong length",
        "An ECDSA value in DER (X9.62) form instead of the raw r‖s of RFC 4051.",
    )
    add(
        "signature-value-empty",
        with_value(""),
        "SignatureError",
        "ECDSA signature value has the wrong length",
        "An empty SignatureValue.",
    )
    add(
        "signature-value-transplanted",
        with_value(signature_blocks(original)[-1].find(DS + "SignatureValue").text or "", parse(joint)),
        "SignatureError",
        "signature value does not verify",
        "The SignatureValue of the signed notice pasted over the last signature of the joint notice.",
    )


def keyinfo_attacks(c: Context) -> None:
    """KeyInfo."""
    pki, office, add, fresh, signed_copy, custom = c.pki, c.office, c.add, c.fresh, c.signed_copy, c.custom
    add(
        "keyinfo-two-certificates",
        custom(Shape(certificates=(pki.attacker_office.der, office.der))),
        "SignatureError",
        "ds:X509Data must contain exactly X509Certificate; found X509Certificate, X509Certificate",
        "Two certificates in X509Data: the attacker's first, the office's second.",
    )

    def second_x509data(signature: etree._Element) -> None:
        key_info = first(signature, DS + "KeyInfo")
        extra = etree.SubElement(key_info, DS + "X509Data")
        etree.SubElement(extra, DS + "X509Certificate").text = b64(pki.attacker_office.der)
        key_info.insert(0, extra)

    add(
        "keyinfo-two-x509data",
        custom(Shape(before_signing=second_x509data)),
        "SignatureError",
        "ds:KeyInfo must contain exactly X509Data; found X509Data, X509Data",
        "Two X509Data elements in KeyInfo, the attacker's first.",
    )

    def key_value(signature: etree._Element) -> None:
        key_info = first(signature, DS + "KeyInfo")
        key_info.remove(first(key_info, DS + "X509Data"))
        numbers = pki.attacker_office.key.public_key().public_numbers()
        assert isinstance(numbers, ec.EllipticCurvePublicNumbers)
        ec_key = etree.SubElement(
            etree.SubElement(key_info, DS + "KeyValue"), DS11 + "ECKeyValue", nsmap={"dsig11": DS11_NS}
        )
        etree.SubElement(ec_key, DS11 + "NamedCurve", URI="urn:oid:1.2.840.10045.3.1.7")
        etree.SubElement(ec_key, DS11 + "PublicKey").text = b64(
            b"\x04" + numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")
        )

    root = fresh()
    first(root, GW + "Title").text = EVIL_TITLE
    sign_shape(root, pki.attacker_office, Shape(before_signing=key_value))
    add(
        "keyinfo-keyvalue",
        root,
        "SignatureError",
        "ds:KeyInfo must contain exactly X509Data; found KeyValue",
        "A forged notice signed by the attacker's key, given as a bare KeyValue instead of a certificate.",
    )
    root = signed_copy()
    signature = signature_blocks(root)[-1]
    signature.remove(first(signature, DS + "KeyInfo"))
    add(
        "keyinfo-missing",
        root,
        "SignatureError",
        SIGNATURE_CHILDREN + " SignedInfo, SignatureValue",
        "The valid signature with its KeyInfo removed (the verifier is supposed to know the key).",
    )
    root = signed_copy()
    certificate = first(signature_blocks(root)[-1], f"{DS}KeyInfo/{DS}X509Data/{DS}X509Certificate")
    certificate.text = b64(b"\x30\x03\x02\x01\x00")
    add(
        "certificate-not-der",
        root,
        "TrustError",
        "certificate is not valid DER X.509",
        "A KeyInfo certificate that is not an X.509 certificate.",
    )
