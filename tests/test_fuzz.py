"""Fuzzing every parser: given arbitrary or mutated bytes, each raises a ``GwxError`` — never another exception,
never a hang.

The valid inputs are the vectors of ``tests/vectors`` (see ``tests/attacks/README.md``); the mutations are byte
flips, truncation, insertion of random bytes or of tokens parsers care about (``<!DOCTYPE``, ``&``, ``]]>``, a
stray ``\\xff``, MIME boundaries, JSON brackets …), deletion, a duplicated slice, and, for XML, a duplicated
element. What escapes is checked everywhere; where a parser verifies a signature, a mutation that still verifies
must verify to the very content its seed does (the same document and signers, header, receipt, directory or tree
head) — a changed byte may only be one the signature does not cover (whitespace inside a tag, say).

Bounded for CI (every test together well under a minute on a quiet machine); ``GWX_FUZZ_EXAMPLES=N`` runs N
examples per test instead, for a longer campaign. Each example runs under a time limit (``HANG_SECONDS``): a
parser that does not return in time fails the test as hung.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import signal
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from cryptography import x509
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gwexchange import xmlsafe
from gwexchange.archive.treehead import VerifiedTreeHead, parse_head_line, tree_head_from_xml, verify_tree_head
from gwexchange.crypto.keys import key_from_pem
from gwexchange.crypto.trust import TrustPolicy
from gwexchange.envelope.description import load_description, load_description_file
from gwexchange.envelope.package import Package
from gwexchange.envelope.receipts import SentRecord, verify_receipt
from gwexchange.envelope.sealing import inspect, open_envelope, receipt_content
from gwexchange.envelope.signing import VerifiedDocument, verify_document
from gwexchange.envelope.xmlform import document_from_element
from gwexchange.errors import GwxError
from gwexchange.network.directory_toml import compile_directory
from gwexchange.network.directory_xml import read_unverified_directory, verify_directory
from gwexchange.routing.bundle import import_bundle
from gwexchange.routing.mime import decode_message
from gwexchange.routing.node_logic import DepartmentKeys, NodeView
from gwexchange.routing.store import Store

HERE = Path(__file__).resolve().parent
VECTORS = HERE / "vectors"
EXCHANGE = VECTORS / "exchange"
EXAMPLES = HERE.parent / "examples"
NOW = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)
AUTHORITY = "gd.gov.ca"
HANG_SECONDS = 20.0
# A failing example can be large: let hypothesis print it instead of turning its warning into the error.
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr:hypothesis.errors.HypothesisWarning")
_ENV_EXAMPLES = int(os.environ.get("GWX_FUZZ_EXAMPLES", "0") or 0)


def fuzz_settings(examples: int) -> settings:
    """``examples`` per test in CI, or ``GWX_FUZZ_EXAMPLES``; no per-example deadline (the hang guard is ours)."""
    return settings(
        max_examples=_ENV_EXAMPLES or examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )


# --- mutations ---------------------------------------------------------------------------------------------------

TOKENS = (
    b"<", b">", b"&", b";", b'"', b"'", b"=", b"/", b"]]>", b"<![CDATA[", b"<!--", b"-->", b"<?x?>",
    b"<!DOCTYPE x>", b'<!DOCTYPE x [<!ENTITY e "e">]>', b"&e;", b"&amp;", b"&#0;", b"&#xD800;", b"\x00", b"\xff",
    b"\xc0\x80", b"\xed\xa0\x80", b"\xef\xbb\xbf", b"\r\n", b"\r\n\r\n", b"--", b"--=_gwx_", b"\r\n.\r\n",
    b"==", b"{", b"}", b"[", b"]", b",", b":", b"null", b"9" * 30, b"-1", b"NaN", b"xmlns=\"urn:x\"",
    b"xmlns:ds=\"urn:x\"", b" Id=\"x\"", b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06", b"\"\"\"", b"[[", b"]]",
    "内网".encode(), "送达".encode(), b"\\u0000",
)  # fmt: skip
_ELEMENT = re.compile(rb"<([A-Za-z][\w.-]*:[\w.-]+)[ >].*?</\1>", re.DOTALL)


@st.composite
def mutated(draw: st.DrawFn, seeds: tuple[bytes, ...], *, max_mutations: int = 4) -> bytes:
    """One of ``seeds`` with 1 to ``max_mutations`` mutations."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, max_mutations))):
        size = len(data)
        at = draw(st.integers(0, size))
        op = draw(st.sampled_from(("flip", "truncate", "insert", "token", "delete", "duplicate", "element")))
        if op == "flip" and size:
            data[min(at, size - 1)] ^= draw(st.integers(1, 255))
        elif op == "truncate":
            del data[at:]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "token":
            data[at:at] = draw(st.sampled_from(TOKENS))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        elif op == "duplicate":
            end = min(size, at + draw(st.integers(1, 256)))
            where = draw(st.integers(0, size))
            data[where:where] = data[at:end]
        elif op == "element":
            elements = list(_ELEMENT.finditer(bytes(data)))
            if elements:
                chosen = elements[draw(st.integers(0, len(elements) - 1))]
                data[chosen.end() : chosen.end()] = chosen.group(0)  # the element twice, side by side
    return bytes(data)


def inputs(seeds: tuple[bytes, ...]) -> st.SearchStrategy[bytes]:
    """Mutations of valid inputs, mostly, and some arbitrary bytes."""
    return st.one_of(mutated(seeds), mutated(seeds), mutated(seeds), st.binary(max_size=2048))


@st.composite
def seeded(draw: st.DrawFn, seeds: tuple[bytes, ...]) -> tuple[bytes | None, bytes]:
    """(the seed, a mutation of it), mostly; (None, arbitrary bytes) one time in four."""
    if draw(st.integers(0, 3)) == 3:
        return None, draw(st.binary(max_size=2048))
    seed = draw(st.sampled_from(seeds))
    return seed, draw(mutated((seed,)))


class Hang(Exception):
    """A parser did not return within HANG_SECONDS."""


@contextlib.contextmanager
def time_limit(seconds: float = HANG_SECONDS) -> Iterator[None]:
    def alarm(signum: int, frame: FrameType | None) -> None:
        raise Hang(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def only_gwx_errors(call: Callable[[], object]) -> GwxError | None:
    """Run ``call``: its result is irrelevant; a ``GwxError`` is returned; anything else fails the test."""
    with time_limit():
        try:
            call()
        except GwxError as e:
            return e
    return None


def verifies_as_seed(content: Callable[[bytes], object], seed: bytes | None, data: bytes) -> None:
    """``content(data)`` — the verified content of a signed input — may raise a ``GwxError`` (nothing else); if it
    returns, ``data`` came from ``seed`` (arbitrary bytes never verify) and its content is the seed's."""
    with time_limit():
        try:
            found = content(data)
        except GwxError:
            return
    assert seed is not None, f"arbitrary bytes verified: {data[:200]!r}"
    expected = content(seed)
    assert found == expected, f"a mutation verifies to other content than its seed's:\n{found!r}\n!=\n{expected!r}"


# --- the world ---------------------------------------------------------------------------------------------------


def _pem(stem: str) -> tuple[Any, x509.Certificate]:
    key = key_from_pem((VECTORS / f"{stem}.key").read_bytes(), None)
    return key, x509.load_pem_x509_certificate((VECTORS / f"{stem}.crt").read_bytes())


@dataclass
class World:
    trust: TrustPolicy
    office_key: Any
    held: Any
    view: NodeView
    record: SentRecord
    receipt_xml: bytes


@pytest.fixture(scope="module")
def world() -> World:
    from gwexchange.crypto.xmldsig import Signer

    root = x509.load_pem_x509_certificate((VECTORS / "pki" / "root.crt").read_bytes())
    crls = tuple(x509.load_pem_x509_crl(p.read_bytes()) for p in (VECTORS / "pki" / "crl.pem", EXCHANGE / "crl.pem"))
    trust = TrustPolicy(root, crls, now=NOW)
    held = verify_directory(
        (EXCHANGE / "directory.signed.xml").read_bytes(), trust, authority_code=AUTHORITY, now=NOW, held=None
    ).directory
    office_key, _ = _pem("pki/issued/gd.gov.office/encryption")
    view = NodeView(
        node_id="gd-hub",
        directory=held,
        trust=trust,
        node_signer=Signer(*_pem("exchange/keys/gd-hub/node")),
        departments={
            "gd.gov.office": DepartmentKeys(Signer(*_pem("pki/issued/gd.gov.office/signing")), office_key),
            "gd.gov.fgw": DepartmentKeys(
                Signer(*_pem("exchange/keys/gd.gov.fgw/signing")), _pem("exchange/keys/gd.gov.fgw/encryption")[0]
            ),
        },
    )
    import json

    sent = json.loads((EXCHANGE / "sent.json").read_text(encoding="utf-8"))
    record = SentRecord(sent["message_id"], sent["envelope_sha256"], sent["document_sha256"], tuple(sent["recipients"]))
    receipt_xml = receipt_content(inspect((EXCHANGE / "receipt.xml").read_bytes(), trust))
    return World(trust, office_key, held, view, record, receipt_xml)


def vector(name: str) -> bytes:
    return (VECTORS / name).read_bytes()


DOCUMENTS = (vector("notice.signed.xml"), vector("joint-notice.signed.xml"), vector("notice.rsa.signed.xml"))
ENVELOPES = (vector("exchange/envelope.xml"), vector("exchange/receipt.xml"))
XML_SEEDS = (*DOCUMENTS, *ENVELOPES, vector("exchange/directory.signed.xml"), vector("exchange/treehead.xml"))


# --- the parsers -------------------------------------------------------------------------------------------------


@fuzz_settings(300)
@given(data=inputs(XML_SEEDS))
def test_xmlsafe_parse(data: bytes) -> None:
    only_gwx_errors(lambda: xmlsafe.parse(data))


def _signers(verified: VerifiedDocument) -> tuple[tuple[str, datetime, int], ...]:
    return tuple((s.department, s.signed_at, s.certificate_serial) for s in verified.signatures)


@fuzz_settings(150)
@given(case=seeded(DOCUMENTS))
def test_document_verify_and_read(case: tuple[bytes | None, bytes], world: World) -> None:
    seed, data = case

    def content(xml: bytes) -> object:
        verified = verify_document(xml, world.trust, now=NOW)
        return verified.document, _signers(verified)

    verifies_as_seed(content, seed, data)
    only_gwx_errors(lambda: document_from_element(xmlsafe.parse(data)))


@fuzz_settings(150)
@given(case=seeded(ENVELOPES))
def test_envelope_inspect_open_and_receipt_content(case: tuple[bytes | None, bytes], world: World) -> None:
    seed, data = case

    def inspected(xml: bytes) -> object:
        found = inspect(xml, world.trust)
        found.header.expired(NOW)
        with contextlib.suppress(GwxError):
            receipt_content(found)
        return found.header, found.parts, found.node.identity

    def opened(xml: bytes) -> object:
        found = open_envelope(xml, "gd.gov.office", world.office_key, world.trust, now=NOW)
        return found.envelope.header, found.document.document, _signers(found.document), found.department

    verifies_as_seed(inspected, seed, data)
    verifies_as_seed(opened, seed, data)


@fuzz_settings(150)
@given(case=st.data())
def test_receipt_parse_and_verify(case: st.DataObject, world: World) -> None:
    seed, receipt = case.draw(seeded((world.receipt_xml,)))

    def content(xml: bytes) -> object:
        verified = verify_receipt(xml, world.record, world.trust, route_nodes=frozenset({"gd-czt", "gd-hub"}))
        return verified.receipt, verified.signer_name

    verifies_as_seed(content, seed, receipt)


@fuzz_settings(150)
@given(case=seeded((vector("exchange/directory.signed.xml"),)))
def test_directory_read_and_verify(case: tuple[bytes | None, bytes], world: World) -> None:
    seed, data = case
    only_gwx_errors(lambda: read_unverified_directory(data))

    def content(xml: bytes) -> object:
        verified = verify_directory(xml, world.trust, authority_code=AUTHORITY, now=NOW, held=world.held)
        return verified.directory, verified.signer_identity, verified.is_update

    verifies_as_seed(content, seed, data)


NETWORK_TOML = """\
serial = 5
issued = 2026-11-01T00:00:00Z
valid_days = 90
certificates = "keys"

[policy]
"内网" = "绝密"
"专网" = "机密"
"外网" = "内部"

[[node]]
id = "gd-czt"
smtp = "127.0.0.1:2601"
zone = "内网"

[[node]]
id = "gd-hub"
smtp = "gd-hub.example:25"
zone = "专网"

[[department]]
code = "gd.gov.fgw"
name = "广东省发展和改革委员会"
node = "gd-hub"

[[link]]
nodes = ["gd-czt", "gd-hub"]
zone = "内网"
""".encode()


FGW_CERTIFICATE = vector("exchange/keys/gd.gov.fgw/encryption.crt")


def _network_reader(extra: bytes | None) -> Callable[[str], bytes]:
    def read(name: str) -> bytes:
        path = (EXCHANGE / name).resolve()
        if EXCHANGE not in path.parents or not path.is_file():
            from gwexchange.errors import ConfigError

            raise ConfigError(f"no certificate {name}")
        data = path.read_bytes()
        return extra if extra is not None and name.endswith("encryption.crt") else data

    return read


@fuzz_settings(150)
@given(
    text=inputs((NETWORK_TOML,)), certificate=st.none() | inputs((vector("exchange/keys/gd.gov.fgw/encryption.crt"),))
)
def test_directory_compile_from_toml(text: bytes, certificate: bytes | None) -> None:
    only_gwx_errors(
        lambda: compile_directory(text.decode("utf-8", errors="replace"), _network_reader(certificate), now=NOW)
    )


def _head(verified: VerifiedTreeHead) -> object:
    head = verified.head
    return head.node_id, head.size, head.root_hash, head.timestamp, verified.signer.identity


@fuzz_settings(200)
@given(case=seeded((vector("exchange/treehead.xml"),)))
def test_tree_head_xml(case: tuple[bytes | None, bytes], world: World) -> None:
    seed, data = case
    verifies_as_seed(lambda xml: _head(verify_tree_head(tree_head_from_xml(xml), world.trust)), seed, data)


@fuzz_settings(200)
@given(case=seeded((vector("exchange/treehead.line").rstrip(b"\n"),)))
def test_tree_head_line(case: tuple[bytes | None, bytes], world: World) -> None:
    seed, data = case
    verifies_as_seed(lambda line: _head(verify_tree_head(parse_head_line(line), world.trust)), seed, data)


DESCRIPTION = (EXAMPLES / "notice.toml").read_bytes()
BODY = (EXAMPLES / "guangdong-egov-plan.txt").read_bytes()
DEPARTMENTS = (EXAMPLES / "departments.toml").read_bytes()


def _measure(name: str) -> tuple[int, str]:
    return len(name), hashlib.sha256(name.encode("utf-8", errors="surrogatepass")).hexdigest()


@fuzz_settings(200)
@given(text=inputs((DESCRIPTION, (EXAMPLES / "letter.toml").read_bytes())), body=inputs((BODY,)) | st.just(BODY))
def test_description_toml(text: bytes, body: bytes) -> None:
    only_gwx_errors(lambda: load_description(text.decode("utf-8", errors="replace"), lambda _: body, _measure))


@fuzz_settings(60)
@given(text=inputs((DESCRIPTION,)), body=inputs((BODY,)), departments=inputs((DEPARTMENTS,)) | st.just(DEPARTMENTS))
def test_description_files(text: bytes, body: bytes, departments: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "notice.toml"
        path.write_bytes(text)
        (Path(folder) / "guangdong-egov-plan.txt").write_bytes(body)
        (Path(folder) / "departments.toml").write_bytes(departments)
        only_gwx_errors(lambda: load_description_file(path))


@fuzz_settings(120)
@given(data=inputs((vector("exchange/package.gwxp"),)))
def test_package_read_and_open(data: bytes, world: World) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "p.gwxp"
        path.write_bytes(data)

        def read() -> None:
            with Package(path) as package:
                opened = open_envelope(package.envelope_xml(), "gd.gov.office", world.office_key, world.trust, now=NOW)
                for part in opened.envelope.parts:
                    for _ in opened.attachment(part, package.part(part.cid)):
                        pass

        def raw_members() -> None:
            with Package(path) as package:
                package.envelope_xml()
                for _ in package.part("part-1"):
                    pass

        only_gwx_errors(read)
        only_gwx_errors(raw_members)


@pytest.fixture(scope="module")
def bundle_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    home = tmp_path_factory.mktemp("fuzz-bundle")
    store = Store(home / "store", "sqlite://")
    yield store
    store.close()


@fuzz_settings(100)
@given(data=inputs((vector("exchange/bundle.gwxb"),)))
def test_bundle_import(data: bytes, world: World, bundle_store: Store) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "b.gwxb"
        path.write_bytes(data)
        only_gwx_errors(lambda: import_bundle(path, bundle_store, world.view, NOW))


@fuzz_settings(250)
@given(data=inputs((vector("exchange/message.eml"),)))
def test_smtp_decode_message(data: bytes) -> None:
    only_gwx_errors(lambda: decode_message(data))


# --- the fuzzer itself ---------------------------------------------------------------------------------------------


def test_the_hang_guard_and_the_error_check_can_fail() -> None:
    with pytest.raises(Hang), time_limit(0.05):
        while True:
            pass
    with pytest.raises(ZeroDivisionError):
        only_gwx_errors(lambda: 1 / 0)
    assert isinstance(only_gwx_errors(lambda: xmlsafe.parse(b"<!DOCTYPE x><x/>")), GwxError)


def test_the_seed_comparison_can_fail(world: World) -> None:
    """A verifier whose result follows bytes the signature does not cover fails the comparison, and so does one
    that verifies arbitrary bytes; the real verifier, given its seed back, passes."""
    notice = DOCUMENTS[0]
    with pytest.raises(AssertionError, match="other content than its seed"):
        verifies_as_seed(len, notice, notice + b" ")
    with pytest.raises(AssertionError, match="arbitrary bytes verified"):
        verifies_as_seed(len, None, b"junk")
    verifies_as_seed(lambda xml: verify_document(xml, world.trust, now=NOW).document, notice, notice + b"\n")
