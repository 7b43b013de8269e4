"""The document corpus run by ``make_attacks.py``: its sections in order, the check of every attack against
``verify_document``, the classes and ``index.toml`` (also ``--reindex``), the vectors' README, and ``main`` (a
new PKI, the valid vectors, the attacks, then the exchange corpus again)."""

from __future__ import annotations

import json
import shutil
import sys

from gwexchange.crypto.trust import TrustPolicy
from gwexchange.envelope.description import load_description_file
from gwexchange.envelope.signing import sign_document, verify_document
from gwexchange.envelope.xmlform import document_to_xml
from gwexchange.errors import GwxError

from . import exchange
from .base import (
    ATTACKER,
    ATTACKS,
    DIGEST_CHANGED,
    EXAMPLES,
    PKI,
    REPO,
    SECOND_SIGNED_AT,
    SIGNED_AT,
    TIME,
    VECTORS,
    VERIFY_NOW,
    parse,
    serialize,
    sign_shape,
)
from .document_content import content_attacks, namespace_attacks, placement_attacks, wrapping_attacks
from .document_corpus import Attack, Context, Corpus, make_draft
from .document_parser import parser_attacks
from .document_signature import algorithm_attacks, keyinfo_attacks, reference_attacks, value_attacks
from .document_signers import certificate_attacks, joint_attacks, schema_attacks, signing_attacks
from .pki import Pki, build_pki

SECTIONS = (
    parser_attacks,
    content_attacks,
    wrapping_attacks,
    placement_attacks,
    namespace_attacks,
    reference_attacks,
    algorithm_attacks,
    value_attacks,
    keyinfo_attacks,
    certificate_attacks,
    signing_attacks,
    joint_attacks,
    schema_attacks,
)


def build_corpus(pki: Pki, draft: bytes, signed: bytes, joint: bytes, joint_draft: bytes) -> Corpus:
    corpus = Corpus()
    context = Context(pki, draft, signed, joint, joint_draft, corpus)
    for section in SECTIONS:
        section(context)
    return corpus


# --- checking and writing ------------------------------------------------------------------------------------


def check(attack: Attack, trust: TrustPolicy) -> str | None:
    """None if ``verify_document`` refuses the attack as expected, else what happened instead."""
    try:
        verify_document(attack.data, trust, now=VERIFY_NOW)
    except GwxError as e:
        if type(e).__name__ != attack.error or attack.message not in str(e):
            return f"refused with {type(e).__name__}: {e}"
        return None
    except Exception as e:  # a foreign exception is a finding too
        return f"crashed with {type(e).__name__}: {e}"
    return "ACCEPTED: verify_document returned success"


def toml_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


# The classes of the corpus (tests/attacks/README.md lists them with their counts): by exact name, then by prefix.
CLASS_BY_NAME = {
    "truncated": "xml-form",
    "unsigned": "content-tampering",
    "wrapper-root": "content-tampering",
    "title-one-byte": "content-tampering",
    "signing-time-changed": "content-tampering",
    "duplicate-title": "content-tampering",
    "duplicate-body": "content-tampering",
    "text-after-signature": "content-tampering",
    "xinclude": "xslt-xpath-external",
    "unsigned-object-in-valid-signature": "signature-wrapping",
    "signature-default-namespace": "namespace-confusion",
    "certificate-not-der": "keyinfo",
    "extra-signature-by-non-issuer": "signing-blocks",
    "transform-xslt": "xslt-xpath-external",
    "transform-xpath": "xslt-xpath-external",
    "transform-xpath-filter2": "xslt-xpath-external",
}
CLASS_BY_PREFIX = (
    (("doctype", "internal-entity", "external-", "billion-laughs", "utf16-hidden-doctype"), "dtd-entities"),
    (("comment-", "processing-instruction"), "xml-form"),
    (("depth-bomb",), "oversize-depth"),
    (
        (
            "xsw",
            "signature-inside-body",
            "signature-copy-inside-body",
            "signature-before-content",
            "signature-in-the-middle",
            "content-after-signature",
            "signature-duplicated",
            "signature-block-duplicated",
            "signing-element-outside-blocks",
            "signing-element-doubled",
        ),
        "signature-wrapping",
    ),
    (("gw-prefix-", "ds-prefix-", "default-namespace-"), "namespace-confusion"),
    (("reference-external-", "reference-xpointer-"), "xslt-xpath-external"),
    (("reference-id-",), "duplicate-ids"),
    (
        ("reference-", "two-references", "extra-element-in-signedinfo", "signedinfo-attribute", "transform"),
        "references-transforms",
    ),
    (
        ("c14n-", "digest-", "signature-ecdsa-sha1", "signature-rsa-", "signature-hmac-", "hmac-", "algorithm-"),
        "algorithm-downgrade",
    ),
    (("signature-value-",), "signature-value"),
    (("keyinfo-",), "keyinfo"),
    (("cert-",), "certificates"),
    (("signing-", "joint-"), "signing-blocks"),
    (("signed-",), "schema"),
)


def attack_class(name: str) -> str:
    """The class of the attack file ``name`` (without .xml)."""
    if name in CLASS_BY_NAME:
        return CLASS_BY_NAME[name]
    for prefixes, cls in CLASS_BY_PREFIX:
        if name.startswith(prefixes):
            return cls
    raise AssertionError(f"attack {name} has no class: add it to CLASS_BY_NAME or CLASS_BY_PREFIX")


def write_index(attacks: list[Attack]) -> None:
    lines = [
        "# The hostile-input corpus of gwexchange: generated by make_attacks.py, run by tests/attacks/runner.py.",
        "# For each file: its class, the gwexchange.errors class verify_document must raise, a substring of its",
        "# message, and the attack. Verified with the trust of tests/vectors/pki (root.crt, crl.pem) at `now`.",
        "# Inputs too large to keep (`generate`) are made at run time by runner.py.",
        "",
        f"now = {VERIFY_NOW.strftime(TIME)}",
        "",
    ]
    for attack in sorted(attacks, key=lambda a: a.name):
        lines += [
            f"[attacks.{toml_string(attack.name)}]",
            f"class = {toml_string(attack_class(attack.name.removesuffix('.xml')))}",
            f"error = {toml_string(attack.error)}",
            f"message = {toml_string(attack.message)}",
            f"description = {toml_string(attack.description)}",
            "",
        ]
    for name, cls, error, message, description, generator in GENERATED:
        lines += [
            f"[attacks.{toml_string(name)}]",
            f"class = {toml_string(cls)}",
            f"generate = {toml_string(generator)}",
            f"error = {toml_string(error)}",
            f"message = {toml_string(message)}",
            f"description = {toml_string(description)}",
            "",
        ]
    (ATTACKS / "index.toml").write_text("\n".join(lines), encoding="utf-8")


# Inputs made at run time by runner.py: (name, class, error, message, description, generator).
GENERATED = (
    (
        "oversize-document",
        "oversize-depth",
        "XmlInputError",
        "more than the limit of 16777216",
        "The signed notice padded with paragraphs to 16 MiB + 1 byte: refused for its size before parsing.",
        "oversize-document",
    ),
    (
        "huge-text-node",
        "oversize-depth",
        "XmlInputError",
        "malformed XML: Resource limit exceeded: Text node too long",
        "An 11 MB text node in the Title: over libxml2's limit for one text node (huge_tree is off).",
        "huge-text-node",
    ),
    (
        "wide-document",
        "oversize-depth",
        "SignatureError",
        DIGEST_CHANGED,
        "One million empty paragraphs inserted in the signed Body (8 MB): parsed within the limits, refused by the "
        "digest.",
        "wide-document",
    ),
)


def reindex() -> int:
    """Rewrite index.toml from the entries it holds, with today's classes and generated inputs."""
    import tomllib

    entries = tomllib.loads((ATTACKS / "index.toml").read_text(encoding="utf-8"))["attacks"]
    generated = {g[0] for g in GENERATED}
    attacks = [
        Attack(name, b"", e["error"], e["message"], e["description"])
        for name, e in entries.items()
        if name not in generated
    ]
    write_index(attacks)
    print(f"index.toml rewritten: {len(attacks)} files, {len(GENERATED)} generated inputs")
    return 0


README = """\
# Test vectors — NOT SECRETS

Everything here is generated by `tests/attacks/make_attacks.py` and checked in on purpose. The private keys
(`*.key`) are stored UNENCRYPTED (`UnsafeUnencrypted`): they are throw-away test vectors, published with the
source code, and must never be trusted, installed or used for anything real.

* `pki/` — the trusted test PKI, an `Authority` home. Root `gd.gov.ca`, valid from 2026-01-01 for 20 years.
  `issued/gd.gov.office/`: `signing` (EC P-256), `signing-rsa` (RSA-2048), `signing-expired` (valid only
  2026-01-01 to 2026-03-01), `signing-revoked` (revoked for keyCompromise on 2026-06-01), `encryption`;
  `issued/gd.gov.czt/` and `issued/gd.gov.gxt/`: `signing`; `issued/gd-hub.gov/`: `node`. `crl.pem` lists the
  revoked certificate and is valid until 2046.
* `attacker/` — what an attacker holds: `root/` (an unrelated root and its gd.gov.office certificate),
  `impostor-root/` (a root with the same name as the trusted one, another key), `self-signed-office.*`, and
  certificates the trusted root mis-issued: `ca-flag-office.*` (basicConstraints CA=true), `sub-ca.*` and
  `sub-ca-office.*` (an end-entity certificate of a sub-CA).
* `notice.draft.xml` — the draft of `examples/notice.toml`; `notice.signed.xml` (EC P-256) and
  `notice.rsa.signed.xml` (RSA-2048), signed by gd.gov.office at 2026-11-20T08:00:00Z;
  `joint-notice.signed.xml`, signed by gd.gov.czt at 08:00:00Z then gd.gov.gxt at 09:30:00Z. All verify with
  `pki/root.crt` and `pki/crl.pem` at 2026-11-20T12:00:00Z.
"""


def clean() -> None:
    for folder in (PKI, ATTACKER):
        if folder.exists():
            shutil.rmtree(folder)
    for path in [*VECTORS.glob("*.xml"), *ATTACKS.glob("*.xml"), ATTACKS / "index.toml", VECTORS / "README.md"]:
        path.unlink(missing_ok=True)


def main() -> int:
    if sys.argv[1:] == ["--reindex"]:
        return reindex()
    clean()
    VECTORS.mkdir(parents=True, exist_ok=True)
    pki = build_pki()
    trust = pki.trust()
    draft = make_draft()
    signed = sign_document(draft, pki.office.signer, at=SIGNED_AT)
    signed_rsa = sign_document(draft, pki.office_rsa.signer, at=SIGNED_AT)
    joint_draft = document_to_xml(load_description_file(EXAMPLES / "joint-notice.toml"))
    joint = sign_document(joint_draft, pki.czt.signer, at=SIGNED_AT)
    joint = sign_document(joint, pki.gxt.signer, at=SECOND_SIGNED_AT, trust=trust)
    # The signer of this script, in our profile, must produce what the library accepts: then the attacks it
    # signs in other shapes are refused for their shape, not for a slip of this script.
    own = parse(draft)
    sign_shape(own, pki.office)
    for data in (signed, signed_rsa, joint, serialize(own)):
        verify_document(data, trust, now=VERIFY_NOW)
    (VECTORS / "notice.draft.xml").write_bytes(draft)
    (VECTORS / "notice.signed.xml").write_bytes(signed)
    (VECTORS / "notice.rsa.signed.xml").write_bytes(signed_rsa)
    (VECTORS / "joint-notice.signed.xml").write_bytes(joint)
    (VECTORS / "README.md").write_text(README, encoding="utf-8")

    corpus = build_corpus(pki, draft, signed, joint, joint_draft)
    good: list[Attack] = []
    bad: list[tuple[Attack, str]] = []
    for attack in corpus.attacks:
        problem = check(attack, trust)
        if problem is None:
            good.append(attack)
            (ATTACKS / attack.name).write_bytes(attack.data)
        else:
            bad.append((attack, problem))
    write_index(good)
    print(f"{len(good)} attacks written to {ATTACKS.relative_to(REPO)}/, index.toml updated")
    for attack, problem in bad:
        print(
            f"NOT WRITTEN {attack.name}: expected {attack.error} containing {attack.message!r}; {problem}",
            file=sys.stderr,
        )
    # The exchange corpus is signed by this PKI: make it again.
    return max(1 if bad else 0, exchange.main())
