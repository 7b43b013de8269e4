"""The trusted test PKI (``tests/vectors/pki``) and what an attacker holds (``tests/vectors/attacker``), made anew
by a full run of ``make_attacks.py``; its docstring lists every certificate."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from gwexchange.crypto.certificates import RevocationReason, Role, Usage
from gwexchange.crypto.certificates import issue as issue_certificate
from gwexchange.crypto.keys import KeyAlgorithm, generate_key, key_from_pem
from gwexchange.crypto.trust import TrustPolicy
from gwexchange.pki.authority import Authority

from .base import (
    ATTACKER,
    CZT,
    CZT_NAME,
    EXPIRED_LIFETIME,
    GXT,
    GXT_NAME,
    LONG,
    NODE,
    NODE_NAME,
    OFFICE,
    OFFICE_NAME,
    PKI,
    REVOKED_AT,
    ROOT_CODE,
    ROOT_NAME,
    ROOT_START,
    UNSAFE,
    Holder,
    hand_made_certificate,
    save,
    subject,
)


def issue(
    authority: Authority,
    code: str,
    name: str,
    usage: Usage,
    *,
    role: Role = Role.DEPARTMENT,
    lifetime: timedelta = LONG,
    algorithm: KeyAlgorithm = KeyAlgorithm.EC_P256,
    stem: str | None = None,
) -> Holder:
    """Issue like ``gwx pki issue``; ``stem`` renames the files so that several certificates of one holder and
    usage can live side by side (the authority always writes ``issued/<code>/<usage>.crt``)."""
    files = authority.issue(
        code=code,
        name=name,
        role=role,
        usage=usage,
        protection=UNSAFE,
        now=ROOT_START,
        algorithm=algorithm,
        lifetime=lifetime,
    )
    cert_path, key_path = files.certificate, files.key
    if stem is not None:
        cert_path = files.certificate.rename(files.certificate.with_name(stem + ".crt"))
        key_path = files.key.rename(files.key.with_name(stem + ".key"))
    key = key_from_pem(key_path.read_bytes(), None)
    return Holder(key, x509.load_pem_x509_certificate(cert_path.read_bytes()))


@dataclass
class Pki:
    root_cert: x509.Certificate
    root_key: ec.EllipticCurvePrivateKey
    crl: x509.CertificateRevocationList
    office: Holder
    office_rsa: Holder
    office_expired: Holder
    office_revoked: Holder
    office_encryption: Holder
    czt: Holder
    gxt: Holder
    node: Holder
    attacker_office: Holder
    impostor_office: Holder
    self_signed_office: Holder
    ca_flag_office: Holder
    sub_ca_office: Holder

    @property
    def root(self) -> Holder:
        return Holder(self.root_key, self.root_cert)

    def trust(self) -> TrustPolicy:
        return TrustPolicy(self.root_cert, (self.crl,))


def build_pki() -> Pki:
    authority = Authority.create(PKI, code=ROOT_CODE, name=ROOT_NAME, protection=UNSAFE, now=ROOT_START)
    expired = issue(authority, OFFICE, OFFICE_NAME, Usage.SIGNING, lifetime=EXPIRED_LIFETIME, stem="signing-expired")
    revoked = issue(authority, OFFICE, OFFICE_NAME, Usage.SIGNING, stem="signing-revoked")
    office_rsa = issue(
        authority, OFFICE, OFFICE_NAME, Usage.SIGNING, algorithm=KeyAlgorithm.RSA_2048, stem="signing-rsa"
    )
    office = issue(authority, OFFICE, OFFICE_NAME, Usage.SIGNING)
    encryption = issue(authority, OFFICE, OFFICE_NAME, Usage.ENCRYPTION)
    czt = issue(authority, CZT, CZT_NAME, Usage.SIGNING)
    gxt = issue(authority, GXT, GXT_NAME, Usage.SIGNING)
    node = issue(authority, NODE, NODE_NAME, Usage.NODE, role=Role.NODE)
    authority.revoke(f"{revoked.cert.serial_number:x}", reason=RevocationReason.KEY_COMPROMISE, now=REVOKED_AT)
    # revoke() publishes a CRL good for 30 days; the vectors need one that outlives the tests.
    crl_path = authority.publish_crl(now=REVOKED_AT, lifetime=LONG)
    root_key = key_from_pem((PKI / "root.key").read_bytes(), None)
    assert isinstance(root_key, ec.EllipticCurvePrivateKey)

    # The attacker's own root, with a certificate naming gd.gov.office.
    evil = Authority.create(
        ATTACKER / "root", code="evil.example", name="攻击者自建的根证书", protection=UNSAFE, now=ROOT_START
    )
    attacker_office = issue(evil, OFFICE, OFFICE_NAME, Usage.SIGNING)
    # An impostor root that copies the trusted root's name (same issuer DN, different key).
    impostor = Authority.create(
        ATTACKER / "impostor-root", code=ROOT_CODE, name=ROOT_NAME, protection=UNSAFE, now=ROOT_START
    )
    impostor_office = issue(impostor, OFFICE, OFFICE_NAME, Usage.SIGNING)
    # A self-signed certificate naming gd.gov.office.
    office_dn = subject(OFFICE, OFFICE_NAME, Role.DEPARTMENT)
    self_key = generate_key()
    assert isinstance(self_key, ec.EllipticCurvePrivateKey)
    self_signed = Holder(self_key, hand_made_certificate(self_key, self_key, office_dn, office_dn, ca=False))
    save(ATTACKER, "self-signed-office", self_signed)
    # Certificates the trusted root mis-issued: a CA certificate naming gd.gov.office, and a sub-CA whose
    # end-entity certificate names gd.gov.office.
    ca_key = generate_key()
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca_flag = Holder(ca_key, hand_made_certificate(ca_key, root_key, authority.root.subject, office_dn, ca=True))
    save(ATTACKER, "ca-flag-office", ca_flag)
    sub_key = generate_key()
    assert isinstance(sub_key, ec.EllipticCurvePrivateKey)
    sub_ca_dn = subject("gd.gov.subca", "广东省某下级CA", Role.ROOT)
    sub_ca = Holder(sub_key, hand_made_certificate(sub_key, root_key, authority.root.subject, sub_ca_dn, ca=True))
    save(ATTACKER, "sub-ca", sub_ca)
    sub_office_key = generate_key()
    sub_office = Holder(
        sub_office_key,
        issue_certificate(
            sub_key,
            sub_ca.cert,
            sub_office_key.public_key(),
            code=OFFICE,
            name=OFFICE_NAME,
            role=Role.DEPARTMENT,
            usage=Usage.SIGNING,
            not_before=ROOT_START,
            lifetime=LONG,
            serial=x509.random_serial_number(),
        ),
    )
    save(ATTACKER, "sub-ca-office", sub_office)

    return Pki(
        root_cert=authority.root,
        root_key=root_key,
        crl=x509.load_pem_x509_crl(crl_path.read_bytes()),
        office=office,
        office_rsa=office_rsa,
        office_expired=expired,
        office_revoked=revoked,
        office_encryption=encryption,
        czt=czt,
        gxt=gxt,
        node=node,
        attacker_office=attacker_office,
        impostor_office=impostor_office,
        self_signed_office=self_signed,
        ca_flag_office=ca_flag,
        sub_ca_office=sub_office,
    )
