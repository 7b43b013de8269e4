"""TLS between nodes: each side holds its node certificate and knows the other by its certificate.

Both sides hold their node certificate (Role.NODE, Usage.NODE, EKU serverAuth + clientAuth, SAN DNSName = node
id) and trust only the gwexchange root (``node_tls``): TLS 1.2 or later, ``CERT_REQUIRED`` on both sides, so
a peer without a certificate, or with one from another root, fails the handshake. OpenSSL does not read CRLs,
so each side then validates the peer's certificate with the ``TrustPolicy`` (chain, validity, node usage,
revocation) and checks that its UID and SAN DNSName are the node it must be:

* the client (``smtp_client``) requires the certificate of the next-hop node it meant to reach
  (``expected_node_id``); any other is refused before a byte of the message is sent;
* the listener (``smtp``) learns the peer's node id from the certificate (``authenticate_peer``) and takes mail
  only from that node.

With a standard relay between two nodes, each TLS hop authenticates its own peer: the listener would see the
relay's certificate, so a relay must hold a node certificate of the exchange to hand mail to a node. The node
signature inside the envelope is what authenticates the sending node end to end.
"""

from __future__ import annotations

import os
import secrets
import ssl
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gwexchange.codes import is_node_id
from gwexchange.crypto.certificates import Role, Usage, identity_of
from gwexchange.crypto.suite import PrivateKey
from gwexchange.crypto.trust import TrustPolicy
from gwexchange.errors import ConfigError, TrustError


@dataclass(frozen=True, slots=True)
class NodeTls:
    """A node's TLS identity: its certificate and the server and client contexts built on it."""

    node_id: str
    certificate: x509.Certificate
    server_context: ssl.SSLContext
    client_context: ssl.SSLContext


def node_tls(node_id: str, key: PrivateKey, certificate: x509.Certificate, root: x509.Certificate) -> NodeTls:
    """TLS contexts for ``node_id`` with its key and node certificate, trusting only ``root``.

    Both contexts require TLS 1.2 or later and the peer's certificate (``CERT_REQUIRED``). The client context
    does not match host names (it connects to whatever host the directory names): ``send_envelope`` checks the
    server's certificate names the expected node after the handshake.
    """
    identity = identity_of(certificate)
    if identity.role is not Role.NODE or identity.code != node_id:
        raise ConfigError(f"the certificate is a {identity.role} certificate of {identity.code}, not node {node_id}'s")
    if not _names_node(certificate, node_id):
        raise ConfigError(f"the certificate of {node_id} does not name it as DNS name (subjectAltName)")
    root_pem = root.public_bytes(serialization.Encoding.PEM).decode("ascii")
    contexts = []
    for protocol in (ssl.PROTOCOL_TLS_SERVER, ssl.PROTOCOL_TLS_CLIENT):
        context = ssl.SSLContext(protocol)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.check_hostname = False
        context.verify_mode = ssl.CERT_REQUIRED
        context.verify_flags |= ssl.VERIFY_X509_STRICT
        context.load_verify_locations(cadata=root_pem)
        _load_chain(context, key, certificate)
        contexts.append(context)
    return NodeTls(node_id=node_id, certificate=certificate, server_context=contexts[0], client_context=contexts[1])


def _load_chain(context: ssl.SSLContext, key: PrivateKey, certificate: x509.Certificate) -> None:
    """``load_cert_chain`` reads files only: the key goes through a private temporary file, encrypted under a
    one-time passphrase, so no readable copy of it ever touches the disk."""
    passphrase = secrets.token_hex(32).encode("ascii")
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(passphrase)
    ) + certificate.public_bytes(serialization.Encoding.PEM)
    fd, name = tempfile.mkstemp(prefix=".gwx-tls-", suffix=".pem")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        context.load_cert_chain(name, password=passphrase)
    except ssl.SSLError as e:
        raise ConfigError(f"the node key and certificate cannot be used for TLS: {e}") from e
    finally:
        Path(name).unlink(missing_ok=True)


def _names_node(certificate: x509.Certificate, node_id: str) -> bool:
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError, x509.DuplicateExtension):
        return False
    return node_id in san.get_values_for_type(x509.DNSName)


def authenticate_peer(der: bytes | None, trust: TrustPolicy, at: datetime) -> str:
    """The node id of a TLS peer's certificate, validated for node use at ``at`` (CRL included).

    Raises ``TrustError`` unless the certificate passes the trust policy and names one node by UID and SAN.
    """
    if not der:
        raise TrustError("the peer presented no certificate")
    validated = trust.validate(der, usage=Usage.NODE, at=at)
    node_id = validated.identity.code
    if not is_node_id(node_id) or not _names_node(validated.certificate, node_id):
        raise TrustError(f"the node certificate of {node_id!r} does not name that node as its DNS name")
    return node_id


def stale_crl(trust: TrustPolicy, now: datetime) -> bool:
    """Whether this node cannot check revocation now: one of its CRLs is past its next update."""
    current = trust.now or now
    return trust.check_revocation and any(
        crl.next_update_utc is not None and crl.next_update_utc < current for crl in trust.crls
    )


__all__ = [
    "NodeTls",
    "authenticate_peer",
    "node_tls",
    "stale_crl",
]
