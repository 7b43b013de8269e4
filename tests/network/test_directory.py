"""The directory: compiled from the example TOML against a PKI on disk, checked for consistency, signed by the
authority's own signing certificate, and refused when unsigned, altered, signed by another, stale, future or older
than the one held. Last, ``gwx directory build/sign/show/route`` end to end."""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID
from lxml import etree

from gwexchange.crypto.certificates import RevocationReason, Role, Usage
from gwexchange.crypto.keys import key_from_pem
from gwexchange.crypto.trust import TrustPolicy
from gwexchange.crypto.xmldsig import Signer, sign_enveloped
from gwexchange.envelope.model import Classification
from gwexchange.errors import ConfigError, SignatureError, TrustError, XmlInputError
from gwexchange.network.directory import (
    DIRECTORY_NS,
    DepartmentEntry,
    Directory,
    Link,
    NodeEntry,
    Zone,
    ZonePolicy,
    authority_code_of,
    check_certificates,
    parse_endpoint,
)
from gwexchange.network.directory_toml import compile_directory
from gwexchange.network.directory_xml import (
    VerifiedDirectory,
    directory_to_element,
    directory_to_xml,
    read_unverified_directory,
    sign_directory,
    sign_directory_xml,
    verify_directory,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
AUTHORITY = "gd.gov.ca"  # the code of the session PKIs' root (conftest ROOT_CODE)
AUTHORITY_NAME = "广东省电子政务安全中心（测试）"
DEPARTMENTS = {
    "gd.gov.office": "广东省人民政府办公厅",
    "gd.gov.czt": "广东省财政厅",
    "gd.gov.gxt": "广东省工业和信息化厅",
    "gz.gov.office": "广州市人民政府办公厅",
    "gz.gov.czj": "广州市财政局",
    "sz.gov.office": "深圳市人民政府办公厅",
}
NODES = {
    "gd-hub": "广东省公文交换中心",
    "gd-czt": "广东省财政厅交换节点",
    "gd-gxt": "广东省工业和信息化厅交换节点",
    "gz-hub": "广州市公文交换中心",
    "gz-czj": "广州市财政局交换节点",
    "sz-gov": "深圳市人民政府交换节点",
}


def make_network_pki(make_pki: Callable[..., Any], start: datetime) -> Any:
    """A PKI for the example network: its six departments, its six nodes, and the authority's signing pair."""
    pki = make_pki(
        start=start, departments={**DEPARTMENTS, AUTHORITY: AUTHORITY_NAME}, rsa_department=False, node=False
    )
    for node_id, name in NODES.items():
        pki.issue(node_id, name, Role.NODE, now=start)
    return pki


@pytest.fixture(scope="module")
def net(make_pki: Callable[..., Any], now: datetime) -> Any:
    """The network PKI; its folder (``home.parent``) holds ``ca/``, as network.toml expects."""
    return make_network_pki(make_pki, now - timedelta(days=10))


@pytest.fixture(scope="module")
def folder(net: Any) -> Path:
    home: Path = net.home
    return home.parent


@pytest.fixture(scope="module")
def reader(folder: Path) -> Callable[[str], bytes]:
    return lambda name: (folder / name).read_bytes()


@pytest.fixture(scope="module")
def network_text() -> str:
    return (EXAMPLES / "network.toml").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def directory(network_text: str, reader: Callable[[str], bytes], now: datetime) -> Directory:
    return compile_directory(network_text, reader, now=now)


@pytest.fixture(scope="module")
def net_trust(net: Any) -> TrustPolicy:
    trust: TrustPolicy = net.trust()
    return trust


@pytest.fixture(scope="module")
def authority(net: Any) -> Signer:
    signer: Signer = net.signer(AUTHORITY)
    return signer


def verify(data: bytes, trust: TrustPolicy, now: datetime, held: Directory | None = None) -> VerifiedDirectory:
    return verify_directory(data, trust, authority_code=AUTHORITY, now=now, held=held)


# --- compiling and checking -----------------------------------------------------------------------------------


def test_the_example_network_compiles(directory: Directory, now: datetime) -> None:
    assert directory.serial == 1
    assert directory.issued == now and directory.expires == now + timedelta(days=90)
    assert dict(directory.policy.limits) == {
        Zone.INTERNAL: Classification.TOP_SECRET,
        Zone.PRIVATE: Classification.CONFIDENTIAL,
        Zone.PUBLIC: Classification.INTERNAL,
    }
    assert [d.code for d in directory.departments] == list(DEPARTMENTS)
    assert [n.node_id for n in directory.nodes] == list(NODES)
    assert {n.zone for n in directory.nodes} == set(Zone)  # three zones
    assert len(directory.links) == 6
    office = directory.department("gd.gov.office")
    assert office.name == "广东省人民政府办公厅" and office.home_node == "gd-hub"
    hub = directory.node("gd-hub")
    assert hub.smtp_endpoint == "gd-hub.exchange.gd.gov.cn:25" and hub.zone is Zone.PRIVATE
    assert hub.name == "广东省公文交换中心"
    assert [other for other, _ in directory.neighbours("gd-hub")] == ["gd-czt", "gd-gxt", "gz-hub"]
    assert directory.link_between("gz-czj", "gz-hub") == Link("gz-hub", "gz-czj", Zone.INTERNAL)
    assert directory.link_between("gd-czt", "sz-gov") is None
    assert [d.code for d in directory.departments_at("gz-hub")] == ["gz.gov.office"]
    assert directory.find_department("xx.gov.none") is None and directory.find_node("nowhere") is None
    with pytest.raises(ConfigError, match="not in directory 1"):
        directory.department("xx.gov.none")
    with pytest.raises(ConfigError, match="not in directory 1"):
        directory.node("nowhere")
    assert directory.valid_at(now) and not directory.valid_at(now + timedelta(days=91))


def test_the_example_network_certificates_chain_to_the_root(
    directory: Directory, net_trust: TrustPolicy, trust: TrustPolicy, now: datetime
) -> None:
    check_certificates(directory, net_trust, at=now)
    with pytest.raises(TrustError, match="configured root"):
        check_certificates(directory, trust, at=now)  # the session PKI's root issued none of them


def insert_after(text: str, anchor: str, addition: str) -> str:
    assert anchor in text, anchor
    return text.replace(anchor, anchor + addition, 1)


CONSISTENCY_CASES: list[tuple[str, Callable[[str], str], str]] = [
    (
        "duplicate node",
        lambda t: t + '\n[[node]]\nid = "gd-hub"\nsmtp = "x.example:25"\nzone = "内网"\n',
        "node gd-hub is listed twice",
    ),
    (
        "duplicate department",
        lambda t: t + '\n[[department]]\ncode = "gd.gov.czt"\nname = "又一个财政厅"\nnode = "gd-hub"\n',
        "department gd.gov.czt is listed twice",
    ),
    (
        "link to an unknown node",
        lambda t: t + '\n[[link]]\nnodes = ["gd-hub", "hk-hub"]\nzone = "外网"\n',
        "names hk-hub, which is not a listed node",
    ),
    (
        "a link twice, written the other way round",
        lambda t: t + '\n[[link]]\nnodes = ["gd-hub", "gd-czt"]\nzone = "专网"\n',
        "linked twice",
    ),
    ("a node linked to itself", lambda t: t + '\n[[link]]\nnodes = ["gd-hub", "gd-hub"]\nzone = "内网"\n', "itself"),
    (
        "home node not listed",
        lambda t: t.replace('node = "sz-gov"', 'node = "sz-hub"'),
        "home node sz-hub is not a listed node",
    ),
    ("a zone missing from the policy", lambda t: t.replace('"外网" = "内部"\n', ""), "missing: 外网"),
    ("an unknown zone", lambda t: t.replace('"外网" = "内部"', '"卫星网" = "内部"'), "not one of 内网, 专网, 外网"),
    ("an unknown 密级", lambda t: t.replace('"外网" = "内部"', '"外网" = "普通"'), "not one of 公开, 内部"),
    ("an unknown key", lambda t: t.replace("serial = 1", "serial = 1\nversion = 2"), "unknown key version"),
    ("a link zone missing", lambda t: t + '\n[[link]]\nnodes = ["gd-hub", "sz-gov"]\n', "zone of link gd-hub–sz-gov"),
    ("no serial", lambda t: t.replace("serial = 1", ""), "serial = N"),
    ("serial zero", lambda t: t.replace("serial = 1", "serial = 0"), "serial must be a whole number"),
    (
        "a bad endpoint",
        lambda t: t.replace("gd-hub.exchange.gd.gov.cn:25", "gd-hub.exchange.gd.gov.cn"),
        "not host:port",
    ),
    ("port out of range", lambda t: t.replace("gd-hub.exchange.gd.gov.cn:25", "gd-hub.example:70000"), "1-65535"),
    ("a bad host", lambda t: t.replace("gd-hub.exchange.gd.gov.cn:25", "gd_hub!.example:25"), "not a host name"),
    ("a bad node id", lambda t: t.replace('id = "gd-hub"', 'id = "GD.hub"'), "node id 'GD.hub' is not valid"),
    (
        "expiry before issue",
        lambda t: t.replace("valid_days = 90", "issued = 2026-11-20T08:00:00Z\nexpires = 2026-11-19T08:00:00Z"),
        "expire after it is issued",
    ),
    (
        "both expires and valid_days",
        lambda t: t.replace("valid_days = 90", "valid_days = 90\nexpires = 2027-01-01T00:00:00Z"),
        "either expires",
    ),
    ("a local time", lambda t: t.replace("valid_days = 90", "expires = 2027-01-01T00:00:00"), "with its zone"),
    (
        "another department's certificate",
        lambda t: insert_after(t, 'node = "gd-hub"\n', 'signing_certificate = "ca/issued/gd.gov.czt/signing.crt"\n'),
        "issued to gd.gov.czt, not gd.gov.office",
    ),
    (
        "an encryption certificate to sign",
        lambda t: insert_after(
            t, 'node = "gd-hub"\n', 'signing_certificate = "ca/issued/gd.gov.office/encryption.crt"\n'
        ),
        "key usage does not allow signing",
    ),
    (
        "a signing certificate to encrypt",
        lambda t: insert_after(
            t, 'node = "gd-hub"\n', 'encryption_certificate = "ca/issued/gd.gov.office/signing.crt"\n'
        ),
        "key usage does not allow encryption",
    ),
    (
        "a node certificate for a department",
        lambda t: insert_after(t, 'node = "gd-hub"\n', 'signing_certificate = "ca/issued/gd-hub/node.crt"\n'),
        "issued to gd-hub",
    ),
    ("a missing certificate file", lambda t: t.replace('"ca/issued"', '"ca/missing"'), "cannot read the certificate"),
    (
        "a key where a certificate belongs",
        lambda t: insert_after(t, 'zone = "专网"\n', 'certificate = "ca/issued/gd-hub/node.key"\n'),
        "is not an X.509 certificate",
    ),
    ("not TOML", lambda t: t + "\n[[node]\n", "not valid TOML"),
]


@pytest.mark.parametrize(("case", "change", "message"), CONSISTENCY_CASES, ids=[c[0] for c in CONSISTENCY_CASES])
def test_inconsistent_directories_are_refused(
    case: str,
    change: Callable[[str], str],
    message: str,
    network_text: str,
    reader: Callable[[str], bytes],
    now: datetime,
) -> None:
    changed = change(network_text)
    assert changed != network_text, case
    with pytest.raises(ConfigError) as info:
        compile_directory(changed, reader, now=now)
    assert message in str(info.value)


def test_a_certificate_naming_the_code_in_the_wrong_role_is_refused(
    net: Any, directory: Directory, now: datetime
) -> None:
    """A node certificate whose UID is a department's code: the code matches, the role does not."""
    office = directory.department("gd.gov.office")
    ca_key = key_from_pem((net.home / "root.key").read_bytes(), net.protection)
    # ``issue`` itself refuses a node certificate with a department's code, so the CA key forges one by hand.
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "办公厅"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, Role.NODE.value),
            x509.NameAttribute(NameOID.USER_ID, "gd.gov.office"),
        ]
    )
    forged = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(net.root.subject)
        .public_key(office.signing_certificate.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    with pytest.raises(ConfigError, match="a node certificate, not a department one"):
        dataclasses.replace(office, signing_certificate=forged)


def test_values_check_themselves(directory: Directory) -> None:
    assert Link("b-node", "a-node", Zone.PUBLIC) == Link("a-node", "b-node", Zone.PUBLIC)
    link = Link("gd-hub", "gz-hub", Zone.PRIVATE)
    assert link.other("gd-hub") == "gz-hub" and link.other("gz-hub") == "gd-hub"
    with pytest.raises(ConfigError):
        link.other("sz-gov")
    with pytest.raises(ConfigError, match="unknown zone"):
        Link("a", "b", "内网")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown 密级"):
        ZonePolicy({Zone.INTERNAL: "绝密", Zone.PRIVATE: Classification.SECRET, Zone.PUBLIC: Classification.PUBLIC})  # type: ignore[dict-item]
    policy = directory.policy
    assert policy.allows(Zone.PUBLIC, Classification.INTERNAL) and not policy.allows(Zone.PUBLIC, Classification.SECRET)
    assert policy.allows(Zone.PRIVATE, Classification.CONFIDENTIAL)
    assert not policy.allows(Zone.PRIVATE, Classification.TOP_SECRET)
    with pytest.raises(TypeError):
        policy.limits[Zone.PUBLIC] = Classification.TOP_SECRET  # type: ignore[index]
    naive = directory.issued.replace(tzinfo=None)
    with pytest.raises(ConfigError, match="time zone"):
        dataclasses.replace(directory, issued=naive)
    with pytest.raises(ConfigError, match="whole seconds"):
        dataclasses.replace(directory, expires=directory.expires + timedelta(microseconds=5))
    with pytest.raises(ConfigError, match="serial"):
        dataclasses.replace(directory, serial=True)
    hub = directory.node("gd-hub")
    v6 = dataclasses.replace(hub, smtp_host="2001:db8::25", smtp_port=2525)
    assert v6.smtp_endpoint == "[2001:db8::25]:2525"
    assert parse_endpoint(v6.smtp_endpoint) == ("2001:db8::25", 2525)
    with pytest.raises(ConfigError, match="IPv6"):
        dataclasses.replace(hub, smtp_host="2001:zz::1")
    assert isinstance(hub, NodeEntry) and isinstance(directory.departments[0], DepartmentEntry)


# --- the XML form, signed -------------------------------------------------------------------------------------


def test_xml_round_trip(directory: Directory) -> None:
    xml = directory_to_xml(directory)
    assert read_unverified_directory(xml) == directory
    assert hash(read_unverified_directory(xml)) == hash(directory)  # a value: usable as a key
    root = etree.fromstring(xml)
    assert root.tag == f"{{{DIRECTORY_NS}}}Directory"
    # IPv6 endpoints and certificates survive too.
    hub = dataclasses.replace(directory.nodes[0], smtp_host="2001:db8::25")
    changed = dataclasses.replace(directory, nodes=(hub, *directory.nodes[1:]))
    assert read_unverified_directory(directory_to_xml(changed)) == changed


def test_sign_and_verify(directory: Directory, authority: Signer, net_trust: TrustPolicy, now: datetime) -> None:
    signed = sign_directory(directory, authority, authority_code=AUTHORITY)
    verified = verify(signed, net_trust, now)
    assert verified.directory == directory
    assert verified.signed_bytes == signed
    assert verified.is_update
    assert verified.signer_identity.code == AUTHORITY and verified.signer_identity.name == AUTHORITY_NAME
    assert len(verified.digest) == 64
    assert read_unverified_directory(signed) == directory
    # Signing the built XML gives the same directory.
    again = sign_directory_xml(directory_to_xml(directory), authority, authority_code=AUTHORITY)
    assert verify(again, net_trust, now).directory == directory
    with pytest.raises(ConfigError, match="already signed"):
        sign_directory_xml(signed, authority)


def test_the_authority_code_is_the_roots(net: Any) -> None:
    assert authority_code_of(net.root) == AUTHORITY
    with pytest.raises(ConfigError, match="not a root certificate"):
        authority_code_of(net.cert("gd.gov.czt"))


def test_unsigned_is_refused(directory: Directory, net_trust: TrustPolicy, now: datetime) -> None:
    with pytest.raises(SignatureError, match="not signed"):
        verify(directory_to_xml(directory), net_trust, now)


def test_tampered_is_refused(directory: Directory, authority: Signer, net_trust: TrustPolicy, now: datetime) -> None:
    signed = sign_directory(directory, authority)
    # Open the public shortcut to 秘密: the link gd-czt–gd-hub moved from 外网 to 内网.
    original = b'<dir:Link a="gd-czt" b="gd-hub" zone="\xe5\xa4\x96\xe7\xbd\x91"/>'
    assert original in signed
    tampered = signed.replace(original, original.replace("外网".encode(), "内网".encode()))
    with pytest.raises(SignatureError, match="digest does not match"):
        verify(tampered, net_trust, now)
    raised = signed.replace(b"<dir:Serial>1<", b"<dir:Serial>9<")
    with pytest.raises(SignatureError, match="digest does not match"):
        verify(raised, net_trust, now)


def test_a_department_cannot_publish_a_directory(
    directory: Directory, net: Any, net_trust: TrustPolicy, now: datetime
) -> None:
    czt = net.signer("gd.gov.czt")
    with pytest.raises(ConfigError, match=re.escape("signed by gd.gov.ca")):
        sign_directory(directory, czt, authority_code=AUTHORITY)
    signed = sign_directory(directory, czt)  # without the check, it signs — and no node takes it
    with pytest.raises(TrustError, match=re.escape("signed by gd.gov.czt; only the authority gd.gov.ca")):
        verify(signed, net_trust, now)


def test_a_node_or_the_root_itself_cannot_sign_a_directory(
    directory: Directory, net: Any, net_trust: TrustPolicy, now: datetime
) -> None:
    node_signer = net.signer("gd-hub", Usage.NODE)
    with pytest.raises(ConfigError, match="not a node one"):
        sign_directory(directory, node_signer)
    root_key = key_from_pem((net.home / "root.key").read_bytes(), net.protection)
    for signer, refusal in (
        (node_signer, "node certificate, not a department one"),
        (Signer(root_key, net.root), "self-signed"),
    ):
        element = directory_to_element(directory)
        sign_enveloped(element, signer)
        with pytest.raises(TrustError, match=refusal):
            verify(etree.tostring(element, xml_declaration=True, encoding="UTF-8"), net_trust, now)


def test_expired_and_future_directories_are_refused(
    directory: Directory, authority: Signer, net_trust: TrustPolicy, now: datetime
) -> None:
    short = dataclasses.replace(directory, issued=now - timedelta(days=2), expires=now - timedelta(seconds=1))
    with pytest.raises(TrustError, match="expired on"):
        verify(sign_directory(short, authority), net_trust, now)
    assert verify(sign_directory(short, authority), net_trust, now - timedelta(seconds=1)).directory == short
    future = dataclasses.replace(directory, issued=now + timedelta(hours=1))
    with pytest.raises(TrustError, match="not valid yet"):
        verify(sign_directory(future, authority), net_trust, now)
    skewed = dataclasses.replace(directory, issued=now + timedelta(minutes=4))  # within the clock skew
    assert verify(sign_directory(skewed, authority), net_trust, now).directory == skewed


def test_serial_rules(directory: Directory, authority: Signer, net_trust: TrustPolicy, now: datetime) -> None:
    first = sign_directory(directory, authority)
    second = dataclasses.replace(directory, serial=2, links=directory.links[:-1])
    held = verify(first, net_trust, now).directory

    newer = verify(sign_directory(second, authority), net_trust, now, held=held)
    assert newer.is_update and newer.directory.serial == 2

    with pytest.raises(TrustError, match="older than directory 2 held here"):
        verify(first, net_trust, now, held=second)

    # The held directory again — the same bytes, or the same content signed again — is the same directory.
    assert not verify(first, net_trust, now, held=held).is_update
    resigned = sign_directory(directory, authority)
    assert resigned != first
    assert not verify(resigned, net_trust, now, held=held).is_update

    # Other content under the held serial is refused.
    conflicting = dataclasses.replace(directory, links=directory.links[:-1])
    with pytest.raises(TrustError, match="same serial"):
        verify(sign_directory(conflicting, authority), net_trust, now, held=held)


def test_a_revoked_authority_key_publishes_nothing(make_pki: Callable[..., Any], now: datetime) -> None:
    pki = make_pki(
        start=now - timedelta(days=10),
        departments={AUTHORITY: AUTHORITY_NAME, "gd.gov.czt": "广东省财政厅"},
        rsa_department=False,
        node=False,
    )
    pki.issue("gd-czt", "财政厅节点", Role.NODE, now=now - timedelta(days=10))
    small = Directory(
        serial=1,
        issued=now,
        expires=now + timedelta(days=30),
        policy=ZonePolicy(
            {
                Zone.INTERNAL: Classification.TOP_SECRET,
                Zone.PRIVATE: Classification.SECRET,
                Zone.PUBLIC: Classification.PUBLIC,
            }
        ),
        nodes=(NodeEntry("gd-czt", "10.0.0.5", 25, Zone.PRIVATE, pki.cert("gd-czt", Usage.NODE)),),
        departments=(
            DepartmentEntry(
                "gd.gov.czt",
                "广东省财政厅",
                "gd-czt",
                pki.cert("gd.gov.czt"),
                pki.cert("gd.gov.czt", Usage.ENCRYPTION),
            ),
        ),
        links=(),
    )
    signed = sign_directory(small, pki.signer(AUTHORITY), authority_code=AUTHORITY)
    assert verify(signed, pki.trust(), now).directory == small
    pki.authority.revoke(pki.serial(AUTHORITY), reason=RevocationReason.SUPERSEDED, now=now - timedelta(hours=1))
    with pytest.raises(TrustError, match="revoked"):
        verify(signed, pki.trust(), now)


def test_malformed_files_are_refused(
    directory: Directory, authority: Signer, net_trust: TrustPolicy, now: datetime
) -> None:
    signed = sign_directory(directory, authority)
    with pytest.raises(ConfigError, match="not a gwexchange directory"):
        verify(b"<Directory/>", net_trust, now)
    with pytest.raises(XmlInputError):
        verify(b'<!DOCTYPE d [<!ENTITY x "y">]>' + signed, net_trust, now)
    with pytest.raises(ConfigError, match="not a valid directory"):
        verify(signed.replace(b"<dir:Serial>1<", b"<dir:Serial>0<"), net_trust, now)
    # A second signature, or a signature that is not last, is outside the profile.
    root = etree.fromstring(signed)
    root.append(copy.deepcopy(root[-1]))
    with pytest.raises(ConfigError, match=r"not a valid directory: .*Signature': This element is not expected"):
        verify(etree.tostring(root), net_trust, now)
    root = etree.fromstring(signed)
    signature = root[-1]
    root.remove(signature)
    root.insert(4, signature)
    with pytest.raises(ConfigError, match=r"not a valid directory: .*Signature': This element is not expected"):
        verify(etree.tostring(root), net_trust, now)
    # A certificate that is not DER, under a valid schema.
    broken = re.sub(
        rb"(<dir:Certificate>)[^<]+",
        rb"\1" + base64.b64encode(b"not a certificate"),
        directory_to_xml(directory),
        count=1,
    )
    with pytest.raises(ConfigError, match=re.escape("not DER X.509")):
        read_unverified_directory(broken)


# --- gwx directory, end to end --------------------------------------------------------------------------------


def gwx_executable() -> str:
    beside = Path(sys.executable).parent / "gwx"
    found = str(beside) if beside.is_file() else shutil.which("gwx")
    assert found is not None, "the gwx console script is not installed (pip install -e .)"
    return found


@pytest.fixture(scope="module")
def site(
    make_pki: Callable[..., Any], passphrase: bytes
) -> tuple[Path, Callable[..., subprocess.CompletedProcess[str]]]:
    """A folder with ``ca/`` and network.toml; the commands read the real clock, so the PKI starts now."""
    pki = make_network_pki(make_pki, datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1))
    where: Path = pki.home.parent
    shutil.copy(EXAMPLES / "network.toml", where / "network.toml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GWX_")}
    env["GWX_KEY_PASSPHRASE"] = passphrase.decode()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [gwx_executable(), "directory", *args],
            cwd=where,
            env=env,
            capture_output=True,
            text=True,
            encoding="utf-8",
            check=False,
            timeout=120,
        )

    return where, run


TRUST_ARGS = ("--root", "ca/root.crt", "--crl", "ca/crl.pem")


def test_gwx_directory_build_sign_show_route(
    site: tuple[Path, Callable[..., subprocess.CompletedProcess[str]]],
) -> None:
    where, run = site

    def ok(*args: str) -> str:
        done = run(*args)
        assert done.returncode == 0, f"{args}: {done.stdout}{done.stderr}"
        return done.stdout

    def refused(*args: str) -> str:
        done = run(*args)
        assert done.returncode == 1, f"{args}: {done.stdout}{done.stderr}"
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
        return done.stderr

    assert "6 个机关，6 个节点，6 条链路" in ok("build", "network.toml", "-o", "directory.xml", *TRUST_ARGS)
    assert "签名：未验证" in ok("show", "directory.xml")
    assert "not signed" in refused("show", "directory.xml", *TRUST_ARGS)
    assert "signed by gd.gov.ca" in refused(
        "sign", "directory.xml", "--keys", "ca/issued/gd.gov.czt", *TRUST_ARGS, "-o", "czt.xml"
    )
    assert not (where / "czt.xml").exists()
    assert "已由" in ok("sign", "directory.xml", "--keys", f"ca/issued/{AUTHORITY}", *TRUST_ARGS)
    signed = "directory.signed.xml"
    assert (where / signed).is_file()

    shown = ok("show", signed, *TRUST_ARGS)
    assert "签名：有效" in shown and "gd.gov.ca" in shown
    for text in ("内网  最高 绝密", "外网  最高 内部", "sz-gov", "深圳市人民政府办公厅", "gd-czt — gd-hub"):
        assert text in shown
    data = json.loads(ok("show", signed, *TRUST_ARGS, "--json"))
    assert data["verified"] is True and data["signer"] == AUTHORITY and data["serial"] == 1
    assert data["policy"] == {"内网": "绝密", "专网": "机密", "外网": "内部"}
    assert {n["id"] for n in data["nodes"]} == set(NODES)

    route = ok("route", signed, *TRUST_ARGS, "--from", "gd-czt", "--to", "gd.gov.office", "--classification", "秘密")
    assert "gd-czt —专网→ gd-gxt —内网→ gd-hub（2 跳）" in route
    recipients = ("--to", "gd.gov.czt,gz.gov.czj", "--to", "sz.gov.office", "--to", "gd.gov.office")
    plan = json.loads(ok("route", signed, "--from", "gd.gov.office", *recipients, "--classification", "内部", "--json"))
    assert plan["sender_node"] == "gd-hub" and plan["local"] == ["gd.gov.office"]
    assert plan["next_hops"] == {
        "gd-hub": {"gd-czt": ["gd.gov.czt"], "gz-hub": ["gz.gov.czj", "sz.gov.office"]},
        "gz-hub": {"gz-czj": ["gz.gov.czj"], "sz-gov": ["sz.gov.office"]},
    }
    error = refused("route", signed, "--from", "gd-czt", "--to", "sz.gov.office", "--classification", "秘密")
    assert "sz.gov.office" in error and "外网" in error

    tampered = (
        (where / signed)
        .read_bytes()
        .replace(b'zone="\xe5\xa4\x96\xe7\xbd\x91"/>', b'zone="\xe5\x86\x85\xe7\xbd\x91"/>', 1)
    )
    (where / "tampered.xml").write_bytes(tampered)
    assert "digest does not match" in refused("show", "tampered.xml", *TRUST_ARGS)
