"""Sign and verify throughput of gwexchange against python-xmlsec and signxml, all with ECDSA P-256.

Run from the repository root with the project's virtual environment::

    python bench/bench_sign_verify.py              # the table (under two minutes)
    python bench/bench_sign_verify.py --profile    # cProfile of gwexchange sign and verify instead

Two documents: the signed sample notice (examples/notice.toml) and a ~120 KB one, the notice with its body
paragraphs repeated, built here. Every implementation does the same work per operation:

    sign    draft bytes -> parse -> append <gw:Signing> -> enveloped signature in our profile -> signed bytes
    verify  signed bytes -> parse -> find the signature -> check digest and signature value

gwexchange does more per verify than the two others: its strict profile check, the trust policy (chain to the
root, validity, key usage, the CRL) and reading the document back through the schema into a ``Document``. The
others verify with the signer's key or certificate preloaded and trust it blindly. Keys are loaded once for all.

Each case runs operations for a fixed wall-time budget, ``--repeat`` times; the table shows the best rate (the
run least disturbed by the rest of the machine) and the median. The floors are for orientation: the least any
implementation must do in Python with lxml and cryptography (parse, exclusive C14N, SHA-256, ECDSA).
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import dataclasses
import gc
import hashlib
import io
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from a source tree without installing
    sys.path.insert(0, str(REPO))

import benchenv  # noqa: E402
import cryptography  # noqa: E402
import signxml  # noqa: E402
import xmlsec  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.exceptions import InvalidSignature  # noqa: E402
from cryptography.hazmat.backends.openssl import backend as openssl_backend  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, utils  # noqa: E402
from lxml import etree  # noqa: E402
from signxml import (  # noqa: E402
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConfiguration,
    SignatureConstructionMethod,
    SignatureMethod,
    XMLSigner,
    XMLVerifier,
)

from gwexchange.crypto.certificates import Role, Usage  # noqa: E402
from gwexchange.crypto.keys import KeyAlgorithm, UnsafeUnencrypted, key_from_pem  # noqa: E402
from gwexchange.crypto.trust import TrustPolicy  # noqa: E402
from gwexchange.crypto.xmldsig import Signer  # noqa: E402
from gwexchange.envelope.description import load_description_file  # noqa: E402
from gwexchange.envelope.model import Document  # noqa: E402
from gwexchange.envelope.signing import VerifiedDocument, sign_document, verify_document  # noqa: E402
from gwexchange.envelope.xmlform import document_to_xml  # noqa: E402
from gwexchange.errors import VerificationError  # noqa: E402
from gwexchange.pki.authority import Authority  # noqa: E402

GW = "urn:gwexchange:document:1"
DS = "http://www.w3.org/2000/09/xmldsig#"
NOW = datetime(2026, 11, 20, 8, 0, 0, tzinfo=UTC)  # the bench's clock, as in the tests
SIGNED_AT = NOW - timedelta(hours=1)
DEPARTMENT = "gd.gov.office"  # issuer of the notice
DEPARTMENT_NAME = "广东省人民政府办公厅"
LARGE_TARGET = 120 * 1024  # bytes of draft XML
GOAL_XMLSEC = 1.5
GOAL_SIGNXML = 5.0
PROFILE_TOP = 15

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True)


# --- fixtures: a PKI in a temporary folder, and the two documents ---------------------------------------------


@dataclasses.dataclass(frozen=True)
class Material:
    signer: Signer
    trust: TrustPolicy
    key_pem: bytes
    cert_pem: bytes

    @property
    def certificate(self) -> x509.Certificate:
        return self.signer.certificate


def make_material(home: Path) -> Material:
    start = NOW - timedelta(days=10)
    ca = Authority.create(
        home, code="gd.gov.ca", name="广东省电子政务安全中心（测试）", protection=UnsafeUnencrypted(), now=start
    )
    files = ca.issue(
        code=DEPARTMENT,
        name=DEPARTMENT_NAME,
        role=Role.DEPARTMENT,
        usage=Usage.SIGNING,
        protection=UnsafeUnencrypted(),
        now=start,
        algorithm=KeyAlgorithm.EC_P256,
    )
    key_pem, cert_pem = files.key.read_bytes(), files.certificate.read_bytes()
    signer = Signer(key_from_pem(key_pem, None), x509.load_pem_x509_certificate(cert_pem))
    crl = x509.load_pem_x509_crl((home / "crl.pem").read_bytes())
    return Material(signer, TrustPolicy(ca.root, (crl,)), key_pem, cert_pem)


def large_document(notice: Document, target: int) -> Document:
    """The notice with its body paragraphs repeated, in order, until the draft XML reaches ``target`` bytes."""
    base = len(document_to_xml(notice))
    body = list(notice.body)
    size = base
    i = 0
    while size < target:
        paragraph = notice.body[i % len(notice.body)]
        body.append(paragraph)
        size += len(f"    <gw:P>{paragraph}</gw:P>\n".encode())
        i += 1
    return dataclasses.replace(notice, body=tuple(body))


# --- the three implementations, and the floors ----------------------------------------------------------------


class Implementation:
    name = ""

    def sign(self, draft: bytes) -> bytes:
        raise NotImplementedError

    def verify(self, signed: bytes) -> object:
        raise NotImplementedError


def _signing_element(root: etree._Element) -> None:
    etree.SubElement(root, f"{{{GW}}}Signing", department=DEPARTMENT, time=SIGNED_AT.strftime("%Y-%m-%dT%H:%M:%SZ"))


class Gwexchange(Implementation):
    name = "gwexchange"

    def __init__(self, m: Material) -> None:
        self.signer, self.trust = m.signer, m.trust

    def sign(self, draft: bytes) -> bytes:
        return sign_document(draft, self.signer, at=SIGNED_AT)

    def verify(self, signed: bytes) -> VerifiedDocument:
        return verify_document(signed, self.trust, now=NOW)


class PythonXmlsec(Implementation):
    """python-xmlsec (libxmlsec1): the key (with its certificate) is loaded once; a context costs one key copy."""

    name = "python-xmlsec"

    def __init__(self, m: Material) -> None:
        self.key = xmlsec.Key.from_memory(m.key_pem, xmlsec.KeyFormat.PEM)
        self.key.load_cert_from_memory(m.cert_pem, xmlsec.KeyFormat.PEM)
        self.public = xmlsec.Key.from_memory(m.cert_pem, xmlsec.KeyFormat.CERT_PEM)

    def sign(self, draft: bytes) -> bytes:
        root = etree.fromstring(draft, _PARSER)
        _signing_element(root)
        signature = xmlsec.template.create(root, xmlsec.Transform.EXCL_C14N, xmlsec.Transform.ECDSA_SHA256, ns="ds")
        root.append(signature)
        reference = xmlsec.template.add_reference(signature, xmlsec.Transform.SHA256, uri="")
        xmlsec.template.add_transform(reference, xmlsec.Transform.ENVELOPED)
        xmlsec.template.add_transform(reference, xmlsec.Transform.EXCL_C14N)
        x509_data = xmlsec.template.add_x509_data(xmlsec.template.ensure_key_info(signature))
        xmlsec.template.x509_data_add_certificate(x509_data)
        ctx = xmlsec.SignatureContext()  # a context signs once; it cannot be reused
        ctx.key = self.key
        ctx.sign(signature)
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8")

    def verify(self, signed: bytes) -> object:
        root = etree.fromstring(signed, _PARSER)
        signature = root[-1]
        if signature.tag != f"{{{DS}}}Signature":
            raise VerificationError("no signature at the end of the document")
        ctx = xmlsec.SignatureContext()
        ctx.key = self.public
        try:
            ctx.verify(signature)
        except xmlsec.Error as e:
            raise VerificationError(str(e)) from e
        return root


class Signxml(Implementation):
    """signxml, key and certificate preloaded as cryptography objects; verify with x509_cert (out of band)."""

    name = "signxml"

    def __init__(self, m: Material) -> None:
        self.key = m.signer.key
        self.chain = [m.certificate]
        self.certificate = m.certificate
        self.signer = XMLSigner(
            method=SignatureConstructionMethod.enveloped,
            signature_algorithm=SignatureMethod.ECDSA_SHA256,
            digest_algorithm=DigestAlgorithm.SHA256,
            c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
        )
        self.verifier = XMLVerifier()
        self.config = SignatureConfiguration(
            location="./",
            signature_methods=frozenset({SignatureMethod.ECDSA_SHA256}),
            digest_algorithms=frozenset({DigestAlgorithm.SHA256}),
            verification_time=NOW,
        )

    def sign(self, draft: bytes) -> bytes:
        root = etree.fromstring(draft, _PARSER)
        _signing_element(root)
        signed = self.signer.sign(root, key=self.key, cert=self.chain)
        return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")

    def verify(self, signed: bytes) -> object:
        try:
            return self.verifier.verify(signed, x509_cert=self.certificate, expect_config=self.config)
        except signxml.exceptions.InvalidInput as e:
            raise VerificationError(str(e)) from e


def _c14n(element: etree._Element) -> bytes:
    return etree.tostring(element, method="c14n", exclusive=True, with_comments=False)


class Floor:
    """The least work there is: no profile, no trust, no schema; the signature is the root's last child."""

    def __init__(self, m: Material) -> None:
        self.key = m.signer.key
        public = m.certificate.public_key()
        assert isinstance(public, ec.EllipticCurvePublicKey)
        self.public = public

    def verify(self, signed: bytes) -> None:
        """parse + exclusive C14N of the document without the signature + SHA-256 + C14N SignedInfo + ECDSA."""
        root = etree.fromstring(signed, _PARSER)
        signature = root[-1]
        root.remove(signature)
        signed_info, value = signature[0], signature[1]
        digest = hashlib.sha256(_c14n(root)).digest()
        if digest != base64.b64decode(signed_info[2][2].text or ""):
            raise VerificationError("digest")
        raw = base64.b64decode(value.text or "")
        der = utils.encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
        self.public.verify(der, _c14n(signed_info), ec.ECDSA(hashes.SHA256()))

    def sign(self, draft: bytes) -> bytes:
        """parse + exclusive C14N + SHA-256 + ECDSA over a SignedInfo-sized blob + serialise (no signature built)."""
        root = etree.fromstring(draft, _PARSER)
        digest = hashlib.sha256(_c14n(root)).digest()
        self.key.sign(digest * 20, ec.ECDSA(hashes.SHA256()))  # ~640 bytes, the size of a SignedInfo
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


# --- timing ---------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Rate:
    runs: tuple[float, ...]  # ops/s of each repeat

    @property
    def best(self) -> float:
        return max(self.runs)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    def cell(self) -> str:
        return f"{self.best:8.0f} ({self.median:.0f})"


def measure(op: Callable[[bytes], object], arg: bytes, budget: float, repeat: int) -> Rate:
    """ops/s of ``op(arg)``, each of ``repeat`` runs going on for ``budget`` seconds of wall time."""
    op(arg)  # warm-up: first-use costs (schema load, caches) are not what is measured
    runs = []
    for _ in range(repeat):
        gc.collect()
        n = 0
        start = time.perf_counter()
        deadline = start + budget
        while True:
            op(arg)
            n += 1
            now = time.perf_counter()
            if now >= deadline:
                break
        runs.append(n / (now - start))
    return Rate(tuple(runs))


# --- checks: every implementation does the real job, or the numbers mean nothing -------------------------------


def check(implementations: list[Implementation], floor: Floor, draft: bytes, gwx: Gwexchange) -> None:
    for impl in implementations:
        signed = impl.sign(draft)
        verified = gwx.verify(signed)  # whoever signed, gwexchange accepts it: the same signature was made
        assert [s.department for s in verified.signatures] == [DEPARTMENT], impl.name
        for verifier in implementations:
            verifier.verify(signed)
        floor.verify(signed)
        tampered = signed.replace(b"<gw:P>", b"<gw:P>X", 1)
        assert tampered != signed
        for verifier in [*implementations, floor]:
            try:
                verifier.verify(tampered)
            except (VerificationError, signxml.exceptions.InvalidSignature, InvalidSignature):
                continue
            raise AssertionError(f"{getattr(verifier, 'name', 'floor')} accepted a tampered document")


# --- output ---------------------------------------------------------------------------------------------------


def environment() -> list[str]:
    return [
        f"gwexchange {benchenv.source_revision()}",
        benchenv.machine(),
        f"lxml {'.'.join(map(str, etree.LXML_VERSION[:3]))} / libxml2 {'.'.join(map(str, etree.LIBXML_VERSION))}; "
        f"python-xmlsec {xmlsec.__version__} / libxmlsec1 {'.'.join(map(str, xmlsec.get_libxmlsec_version()))}; "
        f"{benchenv.library_versions('signxml')}; "
        f"cryptography {cryptography.__version__} / {openssl_backend.openssl_version_text()}",
    ]


def ratio_cell(ours: float, theirs: float, goal: float) -> str:
    r = ours / theirs
    return f"{r:5.2f}x {'ok ' if r >= goal else 'MISS'}"


def run_bench(budget: float, repeat: int, docs: dict[str, tuple[bytes, bytes]], m: Material) -> None:
    gwx = Gwexchange(m)
    implementations: list[Implementation] = [gwx, PythonXmlsec(m), Signxml(m)]
    floor = Floor(m)
    for draft, _ in docs.values():
        check(implementations, floor, draft, gwx)

    results: dict[tuple[str, str, str], Rate] = {}
    started = time.perf_counter()
    for label, (draft, signed) in docs.items():
        for impl in implementations:
            results[(label, "sign", impl.name)] = measure(impl.sign, draft, budget, repeat)
            results[(label, "verify", impl.name)] = measure(impl.verify, signed, budget, repeat)
        results[(label, "sign", "floor")] = measure(floor.sign, draft, budget, repeat)
        results[(label, "verify", "floor")] = measure(floor.verify, signed, budget, repeat)
    elapsed = time.perf_counter() - started

    print(f"\nops/s, best of {repeat} runs of {budget:g} s (median in brackets); ECDSA P-256, one signature\n")
    header = (
        f"{'':<17}{'gwexchange':>17}{'python-xmlsec':>17}{'signxml':>17}{'floor':>17}"
        f"   {'gwx/xmlsec':>11}   {'gwx/signxml':>11}"
    )
    print(header)
    print(
        f"{'':<17}{'':>17}{'':>17}{'':>17}{'':>17}   {'goal ≥' + f'{GOAL_XMLSEC:g}x':>11}   "
        f"{'goal ≥' + f'{GOAL_SIGNXML:g}x':>11}"
    )
    print("-" * len(header))
    for label in docs:
        for op in ("sign", "verify"):
            r = {name: results[(label, op, name)] for name in ("gwexchange", "python-xmlsec", "signxml", "floor")}
            print(
                f"{op + ' ' + label:<17}"
                + "".join(f"{r[name].cell():>17}" for name in ("gwexchange", "python-xmlsec", "signxml", "floor"))
                + f"   {ratio_cell(r['gwexchange'].best, r['python-xmlsec'].best, GOAL_XMLSEC):>11}"
                + f"   {ratio_cell(r['gwexchange'].best, r['signxml'].best, GOAL_SIGNXML):>11}"
            )
    print()
    print("floor sign   = parse + exclusive C14N + SHA-256 + ECDSA sign (SignedInfo-sized) + serialise")
    print("floor verify = parse + exclusive C14N + SHA-256 + C14N SignedInfo + ECDSA verify (no profile, no trust)")
    print("gwexchange verify also checks the profile, the trust policy with the CRL, and reads the Document back")
    print(
        "gwexchange as a share of the floor: "
        + ", ".join(
            f"{op} {label} {results[(label, op, 'gwexchange')].best / results[(label, op, 'floor')].best:.0%}"
            for label in docs
            for op in ("sign", "verify")
        )
    )
    print(f"\nmeasured in {elapsed:.0f} s")


def run_profile(budget: float, docs: dict[str, tuple[bytes, bytes]], m: Material) -> None:
    gwx = Gwexchange(m)
    for label, (draft, signed) in docs.items():
        for op, fn, arg in (("verify", gwx.verify, signed), ("sign", gwx.sign, draft)):
            fn(arg)  # warm-up, as in the bench
            profiler = cProfile.Profile()
            n = 0
            deadline = time.perf_counter() + budget
            profiler.enable()
            while time.perf_counter() < deadline:
                fn(arg)
                n += 1
            profiler.disable()
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(pstats.SortKey.TIME)
            stats.print_stats(PROFILE_TOP)
            text = out.getvalue().strip()
            print(f"\n=== cProfile: gwexchange {op} {label}, {n} operations, top {PROFILE_TOP} by tottime ===")
            # pstats' first lines are the totals; keep them, drop the blank padding
            print("\n".join(line for line in text.splitlines() if line.strip()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=2.0, help="seconds of operations per run (default 2)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the best is shown (default 3)")
    parser.add_argument("--profile", action="store_true", help="profile gwexchange sign and verify instead")
    parser.add_argument("--only", choices=["notice", "large"], help="one document only")
    args = parser.parse_args(argv)

    notice = load_description_file(REPO / "examples" / "notice.toml")
    with tempfile.TemporaryDirectory(prefix="gwx-bench-") as tmp:
        m = make_material(Path(tmp) / "ca")
        docs: dict[str, tuple[bytes, bytes]] = {}
        for label, doc in (("notice", notice), ("large", large_document(notice, LARGE_TARGET))):
            if args.only and args.only != label:
                continue
            draft = document_to_xml(doc)
            docs[label] = (draft, sign_document(draft, m.signer, at=SIGNED_AT))

        for line in environment():
            print(line)
        for label, (draft, signed) in docs.items():
            print(f"document {label}: draft {len(draft) / 1024:.1f} KB, signed {len(signed) / 1024:.1f} KB")
        if args.profile:
            run_profile(args.budget, docs, m)
        else:
            run_bench(args.budget, args.repeat, docs, m)
    return 0


if __name__ == "__main__":
    sys.exit(main())
