"""gwx pki: the security centre's commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gwexchange.cli.common import (
    CA_PASSPHRASE_ENV,
    HomeOption,
    JsonOption,
    emit_json,
    key_protection,
    now,
    read_passphrase,
    to_json,
)
from gwexchange.crypto.certificates import RevocationReason, Role, Usage
from gwexchange.crypto.keys import KeyAlgorithm
from gwexchange.errors import ConfigError
from gwexchange.pki.authority import Authority
from gwexchange.pki.keyfiles import KEY_PASSPHRASE_ENV

pki_app = typer.Typer(help="安全中心：根证书、签发与吊销证书、发布 CRL。", no_args_is_help=True)


@pki_app.command("init")
def pki_init(
    name: Annotated[str, typer.Option(help="Name of the security centre, e.g. 广东省电子政务安全中心.")],
    code: Annotated[str, typer.Option(help="Code of the root authority, e.g. gd.gov.ca.")],
    home: HomeOption = Path("keys/ca"),
    algorithm: Annotated[KeyAlgorithm, typer.Option(help="Root key algorithm.")] = KeyAlgorithm.EC_P256,
    passphrase_env: Annotated[str, typer.Option(help="Variable holding the CA key passphrase.")] = CA_PASSPHRASE_ENV,
    passphrase_file: Annotated[Path | None, typer.Option(help="File whose first line is the passphrase.")] = None,
    unsafe_unencrypted_keys: Annotated[bool, typer.Option(help="UNSAFE: store the root key in the clear.")] = False,
) -> None:
    """Create a root CA and its first (empty) CRL."""
    protection = key_protection(passphrase_env, passphrase_file, unsafe_unencrypted_keys, "the CA key")
    ca = Authority.create(home, code=code, name=name, protection=protection, now=now(), algorithm=algorithm)
    typer.echo(f"已创建根证书：{home / 'root.crt'}（序列号 {ca.root.serial_number:x}）")
    typer.echo(f"证书吊销列表：{home / 'crl.pem'}")


@pki_app.command("issue")
def pki_issue(
    code: Annotated[str, typer.Option(help="Directory code of the holder, e.g. gd.gov.czt or gd-hub.")],
    name: Annotated[str, typer.Option(help="Name of the holder, e.g. 广东省财政厅.")],
    role: Annotated[Role, typer.Option(help="department: a signing and an encryption certificate; node: one.")],
    home: HomeOption = Path("keys/ca"),
    algorithm: Annotated[KeyAlgorithm, typer.Option(help="Key algorithm.")] = KeyAlgorithm.EC_P256,
    passphrase_env: Annotated[str, typer.Option(help="Variable holding the CA key passphrase.")] = CA_PASSPHRASE_ENV,
    passphrase_file: Annotated[Path | None, typer.Option(help="File with the CA key passphrase.")] = None,
    key_passphrase_env: Annotated[
        str, typer.Option(help="Variable holding the passphrase for the new keys.")
    ] = KEY_PASSPHRASE_ENV,
    key_passphrase_file: Annotated[Path | None, typer.Option(help="File with the new keys' passphrase.")] = None,
    unsafe_unencrypted_keys: Annotated[bool, typer.Option(help="UNSAFE: store the new keys in the clear.")] = False,
) -> None:
    """Issue certificates (and keys) to a department or a node."""
    if role is Role.ROOT:
        raise ConfigError("the root certificate is made by 'gwx pki init'")
    ca = Authority.open(home, read_passphrase(passphrase_env, passphrase_file, "the CA key"))
    protection = key_protection(key_passphrase_env, key_passphrase_file, unsafe_unencrypted_keys, "the new keys")
    usages = [Usage.NODE] if role is Role.NODE else [Usage.SIGNING, Usage.ENCRYPTION]
    for usage in usages:
        files = ca.issue(
            code=code, name=name, role=role, usage=usage, protection=protection, now=now(), algorithm=algorithm
        )
        typer.echo(f"{usage.value:<10} 证书 {files.certificate}  私钥 {files.key}")


@pki_app.command("revoke")
def pki_revoke(
    serial: Annotated[str, typer.Argument(help="Serial number (hex) of the certificate, see 'gwx pki list'.")],
    reason: Annotated[RevocationReason, typer.Option(help="RFC 5280 reason.")] = RevocationReason.UNSPECIFIED,
    home: HomeOption = Path("keys/ca"),
    passphrase_env: Annotated[str, typer.Option(help="Variable holding the CA key passphrase.")] = CA_PASSPHRASE_ENV,
    passphrase_file: Annotated[Path | None, typer.Option(help="File with the CA key passphrase.")] = None,
) -> None:
    """Revoke a certificate and publish a new CRL."""
    ca = Authority.open(home, read_passphrase(passphrase_env, passphrase_file, "the CA key"))
    entry = ca.revoke(serial, reason=reason, now=now())
    typer.echo(f"已吊销 {entry.code} 的 {entry.usage} 证书（序列号 {entry.serial}，原因 {entry.reason}）")
    typer.echo(f"新的证书吊销列表：{home / 'crl.pem'}")


@pki_app.command("crl")
def pki_crl(
    home: HomeOption = Path("keys/ca"),
    passphrase_env: Annotated[str, typer.Option(help="Variable holding the CA key passphrase.")] = CA_PASSPHRASE_ENV,
    passphrase_file: Annotated[Path | None, typer.Option(help="File with the CA key passphrase.")] = None,
) -> None:
    """Publish a fresh CRL (do this before the current one expires)."""
    ca = Authority.open(home, read_passphrase(passphrase_env, passphrase_file, "the CA key"))
    typer.echo(f"已发布证书吊销列表：{ca.publish_crl(now=now())}")


@pki_app.command("list")
def pki_list(home: HomeOption = Path("keys/ca"), as_json: JsonOption = False) -> None:
    """List every certificate issued, with its revocation state (needs no passphrase)."""
    index = home / "index.json"
    if not index.is_file():
        raise ConfigError(f"{home} is not a CA home; create one with 'gwx pki init'")
    issued = Authority.read_issued(home)
    if as_json:
        emit_json([to_json(e) for e in issued])
        return
    for e in issued:
        state = f"已吊销 {e.revoked_at[:10]}（{e.reason}）" if e.revoked_at else "有效"
        typer.echo(f"{e.serial:<42} {e.code:<20} {e.usage:<10} 至 {e.not_after[:10]}  {state}  {e.name}")


__all__ = [
    "pki_app",
    "pki_crl",
    "pki_init",
    "pki_issue",
    "pki_list",
    "pki_revoke",
]
