"""The security centre's authority (``Authority``), its certificates, keys and CRL, and the trust policy."""

from __future__ import annotations

import json
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gwexchange.crypto import certificates as certs
from gwexchange.crypto.certificates import RevocationReason, Role, Usage, identity_of
from gwexchange.crypto.keys import KeyAlgorithm, UnsafeUnencrypted, generate_key, key_from_pem, key_to_pem
from gwexchange.crypto.trust import MAX_CERT_BYTES, TrustPolicy
from gwexchange.errors import ConfigError, TrustError
from gwexchange.pki.authority import Authority

PASSPHRASE = b"another-test-passphrase"


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def key_usage(cert: x509.Certificate) -> x509.KeyUsage:
    ext = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ext.critical
    return ext.value


def self_signed(code: str, role: Role, now) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate that looks like ours but is signed by its own key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "冒名者"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role.value),
            x509.NameAttribute(NameOID.USER_ID, code),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return cert, key


# --- create and open -----------------------------------------------------------------------------------------


def test_create_layout(tmp_path: Path, now) -> None:
    home = tmp_path / "ca"
    ca = Authority.create(home, code="gd.gov.ca", name="安全中心", protection=PASSPHRASE, now=now)
    for name in ("root.crt", "root.key", "crl.pem", "index.json"):
        assert (home / name).is_file(), name
    assert stat.S_IMODE((home / "root.key").stat().st_mode) == 0o600
    root = x509.load_pem_x509_certificate((home / "root.crt").read_bytes())
    assert root == ca.root
    assert root.subject == root.issuer
    identity = identity_of(root)
    assert (identity.code, identity.name, identity.role) == ("gd.gov.ca", "安全中心", Role.ROOT)
    basic = root.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical
    assert basic.value.ca
    usage = key_usage(root)
    assert usage.key_cert_sign
    assert usage.crl_sign
    assert not usage.digital_signature
    assert root.not_valid_before_utc == now
    assert root.not_valid_after_utc - now >= timedelta(days=20 * 365)
    assert isinstance(root.public_key(), ec.EllipticCurvePublicKey)
    index = json.loads((home / "index.json").read_text(encoding="utf-8"))
    assert index == {"crl_number": 1, "issued": []}
    crl = x509.load_pem_x509_crl((home / "crl.pem").read_bytes())
    assert crl.is_signature_valid(root.public_key())
    assert len(crl) == 0


def test_create_refuses_to_overwrite(tmp_path: Path, now) -> None:
    home = tmp_path / "ca"
    Authority.create(home, code="gd.gov.ca", name="安全中心", protection=PASSPHRASE, now=now)
    before = (home / "root.key").read_bytes()
    with pytest.raises(ConfigError, match="already"):
        Authority.create(home, code="gd.gov.ca", name="安全中心", protection=PASSPHRASE, now=now)
    assert (home / "root.key").read_bytes() == before


def test_open_with_passphrase(tmp_path: Path, now) -> None:
    home = tmp_path / "ca"
    created = Authority.create(home, code="gd.gov.ca", name="安全中心", protection=PASSPHRASE, now=now)
    opened = Authority.open(home, PASSPHRASE)
    assert opened.root == created.root
    files = opened.issue(
        code="gd.gov.czt",
        name="广东省财政厅",
        role=Role.DEPARTMENT,
        usage=Usage.SIGNING,
        protection=PASSPHRASE,
        now=now,
    )
    cert = x509.load_pem_x509_certificate(files.certificate.read_bytes())
    cert.verify_directly_issued_by(created.root)


def test_open_with_wrong_passphrase(tmp_path: Path, now) -> None:
    home = tmp_path / "ca"
    Authority.create(home, code="gd.gov.ca", name="安全中心", protection=PASSPHRASE, now=now)
    with pytest.raises(ConfigError, match="passphrase"):
        Authority.open(home, b"wrong-passphrase")
    with pytest.raises(ConfigError, match="encrypted"):
        Authority.open(home, None)


def test_open_missing_home(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a CA home"):
        Authority.open(tmp_path / "nothing", PASSPHRASE)


@pytest.mark.parametrize("passphrase", [b"", b"short", b"7chars!"])
def test_short_passphrase_refused(tmp_path: Path, now, passphrase: bytes) -> None:
    with pytest.raises(ConfigError, match="too short"):
        Authority.create(tmp_path / "ca", code="gd.gov.ca", name="安全中心", protection=passphrase, now=now)
    assert not (tmp_path / "ca" / "root.key").exists()
    assert not (tmp_path / "ca" / "root.crt").exists()


def test_short_passphrase_refused_for_issued_keys(tmp_path: Path, now) -> None:
    ca = Authority.create(tmp_path / "ca", code="gd.gov.ca", name="安全中心", protection=PASSPHRASE, now=now)
    with pytest.raises(ConfigError, match="too short"):
        ca.issue(
            code="gd.gov.czt", name="财政厅", role=Role.DEPARTMENT, usage=Usage.SIGNING, protection=b"1234567", now=now
        )


def test_eight_character_passphrase_is_enough(tmp_path: Path, now) -> None:
    Authority.create(tmp_path / "ca", code="gd.gov.ca", name="安全中心", protection=b"12345678", now=now)
    assert Authority.open(tmp_path / "ca", b"12345678").root is not None


def test_rsa_root(tmp_path: Path, now) -> None:
    ca = Authority.create(
        tmp_path / "ca",
        code="gd.gov.ca",
        name="安全中心",
        protection=PASSPHRASE,
        now=now,
        algorithm=KeyAlgorithm.RSA_2048,
    )
    public = ca.root.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    assert public.key_size == 2048


# --- keys ----------------------------------------------------------------------------------------------------


def test_keys_are_encrypted_pkcs8(pki, passphrase) -> None:
    paths = [pki.home / "root.key", *sorted((pki.home / "issued").rglob("*.key"))]
    assert len(paths) == 1 + 2 * 3 + 2 + 1  # root, 3 EC departments x 2, the RSA department x 2, the node
    for path in paths:
        pem = path.read_bytes()
        assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n"), path
        assert b"BEGIN PRIVATE KEY" not in pem
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        key = key_from_pem(pem, passphrase)
        assert isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)


def test_key_matches_certificate(pki) -> None:
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    for code in [*pki.DEPARTMENTS, pki.RSA_DEPARTMENT]:
        for usage in (Usage.SIGNING, Usage.ENCRYPTION):
            assert pki.key(code, usage).public_key().public_bytes(*spki) == pki.cert(
                code, usage
            ).public_key().public_bytes(*spki)


def test_unsafe_unencrypted_keys(make_pki) -> None:
    pki = make_pki(
        protection=UnsafeUnencrypted(), departments={"gd.gov.czt": "财政厅"}, rsa_department=False, node=False
    )
    for path in [pki.home / "root.key", pki.files("gd.gov.czt").key]:
        pem = path.read_bytes()
        assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")
        assert b"ENCRYPTED" not in pem
        key_from_pem(pem, None)
        with pytest.raises(ConfigError, match="not encrypted"):
            key_from_pem(pem, b"a-passphrase")
    assert Authority.open(pki.home, None).root == pki.root


def test_key_from_pem_refuses() -> None:
    with pytest.raises(ConfigError):
        key_from_pem(b"not a key", None)
    plain = key_to_pem(generate_key(KeyAlgorithm.EC_P256), UnsafeUnencrypted())
    assert key_from_pem(plain, None) is not None
    from cryptography.hazmat.primitives.asymmetric import ed25519

    other = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ConfigError, match="Ed25519"):
        key_from_pem(other, None)


@pytest.mark.parametrize(
    ("algorithm", "kind", "size"),
    [(KeyAlgorithm.EC_P256, ec.EllipticCurvePrivateKey, 256), (KeyAlgorithm.RSA_2048, rsa.RSAPrivateKey, 2048)],
)
def test_generate_key(algorithm, kind, size) -> None:
    key = generate_key(algorithm)
    assert isinstance(key, kind)
    assert key.key_size == size


# --- certificates --------------------------------------------------------------------------------------------


def test_department_signing_certificate(pki) -> None:
    cert = pki.cert("gd.gov.czt", Usage.SIGNING)
    identity = identity_of(cert)
    assert (identity.code, identity.name, identity.role) == ("gd.gov.czt", "广东省财政厅", Role.DEPARTMENT)
    assert cert.issuer == pki.root.subject
    cert.verify_directly_issued_by(pki.root)
    usage = key_usage(cert)
    assert usage.digital_signature
    assert usage.content_commitment
    assert not usage.key_encipherment
    assert not usage.key_agreement
    assert not usage.key_cert_sign
    assert not usage.crl_sign
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical
    assert not basic.value.ca
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = pki.root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest


def test_ec_encryption_certificate(pki) -> None:
    cert = pki.cert("gd.gov.czt", Usage.ENCRYPTION)
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    usage = key_usage(cert)
    assert usage.key_agreement
    assert not usage.key_encipherment
    assert not usage.digital_signature
    assert not usage.content_commitment
    assert not usage.encipher_only
    assert not usage.decipher_only


def test_rsa_encryption_certificate(pki) -> None:
    cert = pki.cert(pki.RSA_DEPARTMENT, Usage.ENCRYPTION)
    public = cert.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    assert public.key_size == 2048
    usage = key_usage(cert)
    assert usage.key_encipherment
    assert not usage.key_agreement
    assert not usage.digital_signature
    assert not usage.content_commitment


def test_rsa_signing_certificate(pki) -> None:
    cert = pki.cert(pki.RSA_DEPARTMENT, Usage.SIGNING)
    assert isinstance(cert.public_key(), rsa.RSAPublicKey)
    usage = key_usage(cert)
    assert usage.digital_signature
    assert usage.content_commitment
    assert not usage.key_encipherment


def test_node_certificate(pki) -> None:
    cert = pki.cert(pki.NODE, Usage.NODE)
    assert identity_of(cert).role is Role.NODE
    usage = key_usage(cert)
    assert usage.digital_signature
    assert not usage.content_commitment
    assert not usage.key_encipherment
    assert not usage.key_agreement
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [pki.NODE]


def test_certificate_lifetimes(pki) -> None:
    cert = pki.cert("gd.gov.czt")
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=5 * 365)


def test_certificate_never_outlives_root(make_pki, now) -> None:
    pki = make_pki(start=now - timedelta(days=20 * 365 - 10), departments={}, rsa_department=False, node=False)
    pki.issue("gd.gov.czt", "财政厅", usages=[Usage.SIGNING], now=now)
    assert pki.cert("gd.gov.czt").not_valid_after_utc == pki.root.not_valid_after_utc


@pytest.mark.parametrize(
    ("role", "usage"),
    [
        (Role.NODE, Usage.SIGNING),
        (Role.DEPARTMENT, Usage.NODE),
        (Role.NODE, Usage.ENCRYPTION),
        (Role.ROOT, Usage.SIGNING),
    ],
)
def test_role_and_usage_must_agree(tmp_path: Path, now, role: Role, usage: Usage) -> None:
    ca = Authority.create(tmp_path / "ca", code="gd.gov.ca", name="安全中心", protection=PASSPHRASE, now=now)
    with pytest.raises(ConfigError):
        ca.issue(code="gd.gov.czt", name="财政厅", role=role, usage=usage, protection=PASSPHRASE, now=now)


def test_index_lists_every_certificate(pki) -> None:
    issued = Authority.read_issued(pki.home)
    assert len(issued) == 3 * 2 + 2 + 1
    by_holder = {(e.code, e.usage): e for e in issued}
    entry = by_holder[("gd.gov.czt", "signing")]
    assert entry.serial == pki.serial("gd.gov.czt")
    assert entry.name == "广东省财政厅"
    assert entry.role == "department"
    assert entry.revoked_at is None
    assert by_holder[(pki.NODE, "node")].role == "node"
    assert len({e.serial for e in issued}) == len(issued)


# --- revocation and CRL --------------------------------------------------------------------------------------


def test_revoke_lists_serial_with_reason(make_pki, now) -> None:
    pki = make_pki(rsa_department=False, node=False)
    serial = pki.cert("gd.gov.czt").serial_number
    number_before = pki.crl().extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    entry = pki.authority.revoke(f"{serial:X}", reason=RevocationReason.KEY_COMPROMISE, now=now)
    assert entry.serial == f"{serial:x}"
    assert entry.reason == "keyCompromise"
    crl = pki.crl()
    assert crl.is_signature_valid(pki.root.public_key())
    assert crl.issuer == pki.root.subject
    assert crl.last_update_utc == now
    assert crl.next_update_utc == now + timedelta(days=30)
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == number_before + 1
    revoked = crl.get_revoked_certificate_by_serial_number(serial)
    assert revoked is not None
    assert revoked.revocation_date_utc == now
    assert revoked.extensions.get_extension_for_class(x509.CRLReason).value.reason is x509.ReasonFlags.key_compromise
    assert len(crl) == 1
    assert crl.get_revoked_certificate_by_serial_number(pki.cert("gd.gov.gxt").serial_number) is None
    index = {e.serial: e for e in Authority.read_issued(pki.home)}
    assert index[f"{serial:x}"].revoked_at == now.isoformat()


@pytest.mark.parametrize("reason", list(RevocationReason))
def test_every_reason_is_written(make_pki, now, reason: RevocationReason) -> None:
    pki = make_pki(departments={"gd.gov.czt": "财政厅"}, rsa_department=False, node=False)
    pki.authority.revoke("0x" + pki.serial("gd.gov.czt"), reason=reason, now=now)
    revoked = pki.crl().get_revoked_certificate_by_serial_number(pki.cert("gd.gov.czt").serial_number)
    assert revoked is not None
    assert revoked.extensions.get_extension_for_class(x509.CRLReason).value.reason is reason.flag


def test_revocation_accumulates(make_pki, now) -> None:
    pki = make_pki(rsa_department=False, node=False)
    pki.authority.revoke(pki.serial("gd.gov.czt"), reason=RevocationReason.SUPERSEDED, now=now)
    pki.authority.revoke(pki.serial("gd.gov.gxt", Usage.ENCRYPTION), reason=RevocationReason.UNSPECIFIED, now=now)
    crl = pki.crl()
    assert {r.serial_number for r in crl} == {
        pki.cert("gd.gov.czt").serial_number,
        pki.cert("gd.gov.gxt", Usage.ENCRYPTION).serial_number,
    }


def test_revoke_twice_or_unknown(make_pki, now) -> None:
    pki = make_pki(departments={"gd.gov.czt": "财政厅"}, rsa_department=False, node=False)
    pki.authority.revoke(pki.serial("gd.gov.czt"), reason=RevocationReason.SUPERSEDED, now=now)
    with pytest.raises(ConfigError, match="already revoked"):
        pki.authority.revoke(pki.serial("gd.gov.czt"), reason=RevocationReason.KEY_COMPROMISE, now=now)
    with pytest.raises(ConfigError, match="no certificate"):
        pki.authority.revoke("abcdef", reason=RevocationReason.SUPERSEDED, now=now)


def test_publish_crl_numbers_increase(make_pki, now) -> None:
    pki = make_pki(departments={}, rsa_department=False, node=False)
    numbers = []
    for i in range(3):
        pki.authority.publish_crl(now=now + timedelta(days=i))
        numbers.append(pki.crl().extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
    assert numbers == sorted(numbers)
    assert len(set(numbers)) == 3


def test_revocation_reasons_that_void_past_signatures() -> None:
    voiding = {r for r in RevocationReason if r.voids_past_signatures}
    assert voiding == {RevocationReason.UNSPECIFIED, RevocationReason.KEY_COMPROMISE}


# --- the trust policy ----------------------------------------------------------------------------------------


def test_trust_accepts_own_signing_certificate(pki, trust, now) -> None:
    validated = trust.validate(der(pki.cert("gd.gov.czt")), usage=Usage.SIGNING, at=now)
    assert validated.identity.code == "gd.gov.czt"
    assert validated.usage is Usage.SIGNING
    node = trust.validate(der(pki.cert(pki.NODE, Usage.NODE)), usage=Usage.NODE, at=now)
    assert node.identity.role is Role.NODE
    enc = trust.validate(der(pki.cert("gd.gov.czt", Usage.ENCRYPTION)), usage=Usage.ENCRYPTION, at=now)
    assert enc.usage is Usage.ENCRYPTION


@pytest.mark.parametrize(
    ("holder", "cert_usage", "wanted"),
    [
        ("gd.gov.czt", Usage.ENCRYPTION, Usage.SIGNING),
        ("gd.gov.rsa", Usage.ENCRYPTION, Usage.SIGNING),
        ("gd.gov.czt", Usage.SIGNING, Usage.ENCRYPTION),
        ("gd.gov.czt", Usage.SIGNING, Usage.NODE),
        ("gd-hub", Usage.NODE, Usage.SIGNING),
        ("gd-hub", Usage.NODE, Usage.ENCRYPTION),
    ],
)
def test_trust_refuses_wrong_usage(pki, trust, now, holder: str, cert_usage: Usage, wanted: Usage) -> None:
    with pytest.raises(TrustError):
        trust.validate(der(pki.cert(holder, cert_usage)), usage=wanted, at=now)


def test_trust_refuses_certificate_from_another_root(pki, trust, make_pki, now, tmp_path: Path) -> None:
    # same subject names, different keys: the path looks right, the signature does not verify
    twin = make_pki(departments={"gd.gov.czt": "广东省财政厅"}, rsa_department=False, node=False)
    assert twin.root.subject == pki.root.subject
    with pytest.raises(TrustError, match="does not verify"):
        trust.validate(der(twin.cert("gd.gov.czt")), usage=Usage.SIGNING, at=now)
    # a root with another name
    other_home = tmp_path / "other-root"
    other = Authority.create(other_home, code="other.ca", name="别的中心", protection=PASSPHRASE, now=now)
    files = other.issue(
        code="gd.gov.czt",
        name="广东省财政厅",
        role=Role.DEPARTMENT,
        usage=Usage.SIGNING,
        protection=PASSPHRASE,
        now=now,
    )
    cert = x509.load_pem_x509_certificate(files.certificate.read_bytes())
    with pytest.raises(TrustError, match="not issued by the configured root"):
        trust.validate(der(cert), usage=Usage.SIGNING, at=now)


@pytest.mark.parametrize("role", [Role.DEPARTMENT, Role.ROOT])
def test_trust_refuses_self_signed(trust, now, role: Role) -> None:
    cert, _ = self_signed("gd.gov.czt", role, now)
    with pytest.raises(TrustError, match="self-signed"):
        trust.validate(der(cert), usage=Usage.SIGNING, at=now)


def test_trust_refuses_the_root_itself(pki, trust, now) -> None:
    with pytest.raises(TrustError):
        trust.validate(der(pki.root), usage=Usage.SIGNING, at=now)


def test_trust_refuses_garbage(trust, now) -> None:
    with pytest.raises(TrustError):
        trust.validate(b"\x30\x03\x02\x01\x00", usage=Usage.SIGNING, at=now)
    with pytest.raises(TrustError, match="too large"):
        trust.validate(b"\x30" * 20000, usage=Usage.SIGNING, at=now)


def test_trust_checks_validity_period(pki, trust) -> None:
    cert = pki.cert("gd.gov.czt")
    with pytest.raises(TrustError, match="not valid"):
        trust.validate(der(cert), usage=Usage.SIGNING, at=cert.not_valid_before_utc - timedelta(seconds=1))
    without_crl = TrustPolicy(pki.root, (), unsafe_skip_revocation=True)
    with pytest.raises(TrustError, match="not valid"):
        without_crl.validate(der(cert), usage=Usage.SIGNING, at=cert.not_valid_after_utc + timedelta(seconds=1))
    without_crl.validate(der(cert), usage=Usage.SIGNING, at=cert.not_valid_after_utc)


NO_CRL = r"^no CRL is configured: revocation cannot be checked \(give the root's crl\.pem\)$"
CRL_NOT_THE_ROOTS = r"^a configured CRL is not signed by the root$"


def test_missing_crl_refused_unless_told(pki) -> None:
    with pytest.raises(ConfigError, match=NO_CRL):
        TrustPolicy(pki.root)
    with pytest.raises(ConfigError, match=NO_CRL):
        TrustPolicy(pki.root, ())
    assert TrustPolicy(pki.root, unsafe_skip_revocation=True).crls == ()


def test_crl_not_signed_by_root_refused(pki, make_pki) -> None:
    twin = make_pki(departments={}, rsa_department=False, node=False)
    assert twin.crl().issuer == pki.root.subject  # same name, other key
    with pytest.raises(ConfigError, match=CRL_NOT_THE_ROOTS):
        TrustPolicy(pki.root, (twin.crl(),))
    with pytest.raises(ConfigError, match=CRL_NOT_THE_ROOTS):
        TrustPolicy(pki.root, (pki.crl(), twin.crl()))


def test_crl_from_another_issuer_refused(pki, tmp_path: Path, now) -> None:
    other = Authority.create(tmp_path / "other", code="other.ca", name="别的中心", protection=PASSPHRASE, now=now)
    crl = x509.load_pem_x509_crl((tmp_path / "other" / "crl.pem").read_bytes())
    assert other.root.subject != pki.root.subject
    with pytest.raises(ConfigError, match=CRL_NOT_THE_ROOTS):
        TrustPolicy(pki.root, (crl,))


def test_root_must_be_self_signed(pki) -> None:
    with pytest.raises(ConfigError, match=r"^the configured root certificate is not self-signed$"):
        TrustPolicy(pki.cert("gd.gov.czt"), (pki.crl(),))


def test_forged_root_signature_refused(now) -> None:
    """A "root" whose subject equals its issuer but whose signature was made by another key."""
    real_key = ec.generate_private_key(ec.SECP256R1())
    fake = certs.make_root(
        real_key, code="gd.gov.ca", name="中心", not_before=now, lifetime=timedelta(days=1), serial=1
    )
    other_key = ec.generate_private_key(ec.SECP256R1())
    forged = (
        x509.CertificateBuilder()
        .subject_name(fake.subject)
        .issuer_name(fake.subject)
        .public_key(real_key.public_key())
        .serial_number(2)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(other_key, hashes.SHA256())
    )
    with pytest.raises(ConfigError, match=r"^the configured root certificate's self-signature does not verify$"):
        TrustPolicy(forged, unsafe_skip_revocation=True)


def test_revoked_certificate_refused_by_trust(make_pki, now) -> None:
    pki = make_pki(departments={"gd.gov.czt": "财政厅"}, rsa_department=False, node=False)
    cert = pki.cert("gd.gov.czt")
    pki.authority.revoke(pki.serial("gd.gov.czt"), reason=RevocationReason.SUPERSEDED, now=now)
    trust = pki.trust()
    with pytest.raises(TrustError, match="revoked"):
        trust.validate(der(cert), usage=Usage.SIGNING, at=now)
    trust.validate(der(cert), usage=Usage.SIGNING, at=now - timedelta(seconds=1))  # superseded: earlier is fine
    TrustPolicy(pki.root, unsafe_skip_revocation=True).validate(der(cert), usage=Usage.SIGNING, at=now)


def test_stale_crl_refused_even_for_backdated_signatures(make_pki, now) -> None:
    """CRL freshness is judged on the verifier's clock: backdating a signature does not get past a stale CRL."""
    pki = make_pki(
        start=now - timedelta(days=200), departments={"gd.gov.czt": "财政厅"}, rsa_department=False, node=False
    )
    cert = pki.cert("gd.gov.czt")
    long_ago = now - timedelta(days=199)  # the first CRL was current then, and expired 170 days ago
    stale = TrustPolicy(pki.root, (pki.crl(),), now=now)
    with pytest.raises(TrustError, match="CRL"):
        stale.validate(der(cert), usage=Usage.SIGNING, at=long_ago)
    pki.authority.publish_crl(now=now - timedelta(hours=1))
    TrustPolicy(pki.root, (pki.crl(),), now=now).validate(der(cert), usage=Usage.SIGNING, at=long_ago)


def test_the_root_certificate_is_refused_as_a_signer(pki, now) -> None:
    refusal = r"^certificate is self-signed; only certificates issued by the root are trusted$"
    with pytest.raises(TrustError, match=refusal):
        pki.trust().validate(der(pki.root), usage=Usage.SIGNING, at=now)


def test_a_crl_is_current_up_to_its_next_update_and_not_a_moment_after(pki, now) -> None:
    crl = pki.crl()
    assert crl.next_update_utc is not None
    cert = pki.cert("gd.gov.czt")
    TrustPolicy(pki.root, (crl,), now=crl.next_update_utc).validate(der(cert), usage=Usage.SIGNING, at=now)
    later = TrustPolicy(pki.root, (crl,), now=crl.next_update_utc + timedelta(microseconds=1))
    with pytest.raises(TrustError, match=r"^the CRL expired on "):
        later.validate(der(cert), usage=Usage.SIGNING, at=now)


def test_a_revocation_without_a_reason_voids_every_signature(make_pki, now) -> None:
    """An entry with no reason extension (another CA's tools may write one) counts as unspecified: like a key
    compromise, it voids signatures made before it as well."""
    pki = make_pki(
        start=now - timedelta(days=10), departments={"gd.gov.czt": "财政厅"}, rsa_department=False, node=False
    )
    cert = pki.cert("gd.gov.czt")
    entry = x509.RevokedCertificateBuilder().serial_number(cert.serial_number).revocation_date(now - timedelta(days=1))
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(pki.root.subject)
        .last_update(now - timedelta(days=1))
        .next_update(now + timedelta(days=10))
        .add_revoked_certificate(entry.build())
        .sign(pki.authority._key, hashes.SHA256())
    )
    trust = TrustPolicy(pki.root, (crl,), now=now)
    with pytest.raises(TrustError, match=rf"\(serial {cert.serial_number:x}\) was revoked on .* \(unspecified\)$"):
        trust.validate(der(cert), usage=Usage.SIGNING, at=now - timedelta(days=5))  # signed before the revocation


def test_a_certificate_is_read_up_to_its_size_bound_and_not_a_byte_more(pki, now) -> None:
    at_bound = b"\x30" + b"\x00" * (MAX_CERT_BYTES - 1)  # not DER, but small enough to be read as such
    with pytest.raises(TrustError, match=r"^certificate is not valid DER X\.509$"):
        pki.trust().validate(at_bound, usage=Usage.SIGNING, at=now)
    with pytest.raises(TrustError, match=r"^certificate is too large$"):
        pki.trust().validate(at_bound + b"\x00", usage=Usage.SIGNING, at=now)
