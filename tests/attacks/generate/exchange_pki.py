"""The exchange's part of the test PKI (``tests/vectors/exchange/keys``, ``crl.pem``), issued by the root of
``tests/vectors/pki``: the nodes gd-czt, gd-hub and gd-edge (gd-czt also expired, revoked, self-signed and from the
attacker's root), encryption keys of the departments, gd.gov.fgw, and the authority's directory key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gwexchange.crypto.certificates import Revocation, RevocationReason, Role, Usage, make_crl
from gwexchange.crypto.certificates import issue as issue_certificate
from gwexchange.crypto.keys import KeyAlgorithm, generate_key, key_from_pem
from gwexchange.crypto.trust import TrustPolicy

from . import base
from .base import CZT, GXT, OFFICE, PKI

EXCHANGE = base.VECTORS / "exchange"
KEYS = EXCHANGE / "keys"
FGW, FGW_NAME = "gd.gov.fgw", "广东省发展和改革委员会"
AUTHORITY = base.ROOT_CODE


def holder(stem: Path) -> base.Holder:
    """A key and certificate stored as ``<stem>.key`` / ``<stem>.crt``."""
    key = key_from_pem(Path(f"{stem}.key").read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
    return base.Holder(key, x509.load_pem_x509_certificate(Path(f"{stem}.crt").read_bytes()))


def issued(
    issuer: base.Holder,
    folder: Path,
    stem: str,
    code: str,
    name: str,
    role: Role,
    usage: Usage,
    *,
    algorithm: KeyAlgorithm = KeyAlgorithm.EC_P256,
    lifetime: timedelta = base.LONG,
) -> base.Holder:
    key = generate_key(algorithm)
    assert isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
    cert = issue_certificate(
        issuer.key, issuer.cert, key.public_key(), code=code, name=name, role=role, usage=usage,
        not_before=base.ROOT_START, lifetime=lifetime, serial=x509.random_serial_number(),
    )  # fmt: skip
    made = base.Holder(key, cert)
    base.save(folder / code, stem, made)
    return made


@dataclass
class Pki:
    root: base.Holder
    crls: tuple[x509.CertificateRevocationList, ...]
    office: base.Holder
    office_encryption: base.Holder
    office_revoked: base.Holder
    office_expired: base.Holder
    office_self_signed: base.Holder
    office_attacker: base.Holder
    czt: base.Holder
    czt_encryption: base.Holder
    gxt: base.Holder
    gxt_encryption: base.Holder
    fgw: base.Holder
    fgw_encryption: base.Holder
    authority: base.Holder
    authority_attacker: base.Holder
    node_czt: base.Holder
    node_hub: base.Holder
    node_edge: base.Holder
    node_czt_expired: base.Holder
    node_czt_revoked: base.Holder
    node_czt_self_signed: base.Holder
    node_czt_attacker: base.Holder

    def trust(self) -> TrustPolicy:
        return TrustPolicy(self.root.cert, self.crls, now=base.VERIFY_NOW)

    def encryption(self, code: str) -> x509.Certificate:
        return {
            OFFICE: self.office_encryption, CZT: self.czt_encryption, GXT: self.gxt_encryption,
            FGW: self.fgw_encryption,
        }[code].cert  # fmt: skip

    def signing(self, code: str) -> base.Holder:
        return {OFFICE: self.office, CZT: self.czt, GXT: self.gxt, FGW: self.fgw}[code]


def build_pki() -> Pki:
    issued_dir = PKI / "issued"
    root = holder(PKI / "root")
    attacker_root = holder(base.ATTACKER / "root" / "root")
    node = Role.NODE, Usage.NODE
    czt_node_name = "广东省财政厅交换节点（测试向量）"
    made = {
        "node_czt": issued(root, KEYS, "node", "gd-czt", czt_node_name, *node),
        "node_hub": issued(root, KEYS, "node", "gd-hub", "广东省公文交换枢纽节点（测试向量）", *node),
        "node_edge": issued(root, KEYS, "node", "gd-edge", "广东省边缘交换节点（测试向量）", *node),
        "node_czt_expired": issued(
            root, KEYS, "node-expired", "gd-czt", czt_node_name, *node, lifetime=base.EXPIRED_LIFETIME
        ),
        "node_czt_revoked": issued(root, KEYS, "node-revoked", "gd-czt", czt_node_name, *node),
        "node_czt_attacker": issued(attacker_root, KEYS / "attacker", "node-attacker-root", "gd-czt", czt_node_name,
                                    *node),
        "czt_encryption": issued(root, KEYS, "encryption", CZT, base.CZT_NAME, Role.DEPARTMENT, Usage.ENCRYPTION),
        "gxt_encryption": issued(root, KEYS, "encryption", GXT, base.GXT_NAME, Role.DEPARTMENT, Usage.ENCRYPTION),
        "fgw": issued(root, KEYS, "signing", FGW, FGW_NAME, Role.DEPARTMENT, Usage.SIGNING),
        "fgw_encryption": issued(root, KEYS, "encryption", FGW, FGW_NAME, Role.DEPARTMENT, Usage.ENCRYPTION,
                                 algorithm=KeyAlgorithm.RSA_2048),
        "authority": issued(root, KEYS, "signing", AUTHORITY, base.ROOT_NAME, Role.DEPARTMENT, Usage.SIGNING),
        "authority_attacker": issued(attacker_root, KEYS / "attacker", "signing-attacker-root", AUTHORITY,
                                     base.ROOT_NAME, Role.DEPARTMENT, Usage.SIGNING),
    }  # fmt: skip
    self_key = generate_key()
    assert isinstance(self_key, ec.EllipticCurvePrivateKey)
    node_dn = base.subject("gd-czt", czt_node_name, Role.NODE)
    self_signed = base.Holder(self_key, base.hand_made_certificate(self_key, self_key, node_dn, node_dn, ca=False))
    base.save(KEYS / "attacker" / "gd-czt", "node-self-signed", self_signed)
    revoked = made["node_czt_revoked"].cert.serial_number
    crl = make_crl(
        root.key, root.cert, [Revocation(revoked, base.REVOKED_AT, RevocationReason.KEY_COMPROMISE)],
        number=1_000, this_update=base.REVOKED_AT, next_update=base.REVOKED_AT + base.LONG,
    )  # fmt: skip
    (EXCHANGE / "crl.pem").write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    return Pki(
        root=root,
        crls=(x509.load_pem_x509_crl((PKI / "crl.pem").read_bytes()), crl),
        office=holder(issued_dir / OFFICE / "signing"),
        office_encryption=holder(issued_dir / OFFICE / "encryption"),
        office_revoked=holder(issued_dir / OFFICE / "signing-revoked"),
        office_expired=holder(issued_dir / OFFICE / "signing-expired"),
        office_self_signed=holder(base.ATTACKER / "self-signed-office"),
        office_attacker=holder(base.ATTACKER / "root" / "issued" / OFFICE / "signing"),
        czt=holder(issued_dir / CZT / "signing"),
        gxt=holder(issued_dir / GXT / "signing"),
        node_czt_self_signed=self_signed,
        **made,
    )
