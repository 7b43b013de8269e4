"""The file-system edge: clerks' description files, attachments, key folders, atomic writes."""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path

from cryptography import x509

from gwexchange.crypto.keys import key_from_pem
from gwexchange.crypto.suite import PrivateKey
from gwexchange.envelope.description import load_description
from gwexchange.envelope.model import Document
from gwexchange.errors import ConfigError, DocumentError, InputError

MAX_BODY_BYTES = 4 * 1024 * 1024
CHUNK = 1024 * 1024


def atomic_write(path: Path, data: bytes, *, private: bool = False) -> None:
    """Replace ``path`` durably: a reader sees the old file or the new one, never half of one, and after a crash
    the new one if this returned. The scratch file is made exclusively (never a link someone planted) and is
    mode 0600, like every file gwx writes (``private`` says so where it matters: keys)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        if private:
            os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    sync_folder(path.parent)


def write_new(path: Path, chunks: Iterable[bytes]) -> None:
    """Publish a new private file (0600) whole or not at all, never in place of anything.

    The bytes go to a scratch file made exclusively beside ``path`` and reach the disk; only then does the file
    take its name, and only if nothing holds it: an existing file or a symbolic link planted there is neither
    replaced nor followed. If ``chunks`` raises (an attachment whose digest does not match), nothing is left.
    """
    folder = path.parent
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        _take_name(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    sync_folder(folder)


def _take_name(tmp: str, path: Path) -> None:
    try:
        try:
            os.link(tmp, path, follow_symlinks=False)
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            # No hard links here (a FAT stick): claim the name exclusively, then put the file over our own claim.
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))
            os.replace(tmp, path)
    except FileExistsError:
        raise InputError(f"{path} already exists: gwx never overwrites a file; write to an empty folder") from None


def sync_folder(folder: Path) -> None:
    """Make a rename or a new name in ``folder`` survive a power cut (the file's own fsync does not)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


def measure_file(path: Path) -> tuple[int, str]:
    """Size and SHA-256 (hex) of a file, read in chunks so any size fits in memory."""
    h = hashlib.sha256()
    size = 0
    for chunk in read_chunks(path):
        h.update(chunk)
        size += len(chunk)
    return size, h.hexdigest()


def read_departments(path: Path) -> dict[str, str]:
    """A department list: ``[departments]`` mapping codes to names."""
    try:
        spec = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"cannot read the department list {path}: {e}") from e
    table = spec.get("departments")
    if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        raise ConfigError(f'{path} must have a [departments] table of code = "name" lines')
    return {str(k): str(v) for k, v in table.items()}


def load_description_file(path: Path, departments: Path | None = None) -> Document:
    """Load a description; relative names in it are relative to its folder.

    Without ``departments``, a ``departments.toml`` beside the description supplies department names.
    """
    folder = path.parent
    if departments is None and (folder / "departments.toml").is_file():
        departments = folder / "departments.toml"

    def resolve(name: str) -> Path:
        target = folder / name
        if not target.is_file():
            raise DocumentError("描述文件", f"找不到文件 {name}（相对于 {folder}）")
        return target

    def read(name: str) -> bytes:
        target = resolve(name)
        if target.stat().st_size > MAX_BODY_BYTES:
            raise DocumentError("正文", f"正文文件 {name} 超过 {MAX_BODY_BYTES // 1024 // 1024} MB")
        return target.read_bytes()

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise ConfigError(f"description file {path} does not exist") from e
    except UnicodeDecodeError as e:
        raise DocumentError("描述文件", f"{path} 不是 UTF-8 编码") from e
    names = read_departments(departments) if departments is not None else None
    return load_description(text, read, lambda name: measure_file(resolve(name)), names)


KEY_PASSPHRASE_ENV = "GWX_KEY_PASSPHRASE"  # noqa: S105  # the name of the variable, not a passphrase


def read_file(path: Path, what: str = "file") -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read {what} {path}: {e.strerror or e}") from e


def load_certificate(path: Path, what: str = "the certificate") -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(read_file(path, what))
    except ValueError as e:
        raise ConfigError(f"{path} is not a PEM certificate") from e


def load_keypair(
    folder: Path, usage: str, passphrase_env: str = KEY_PASSPHRASE_ENV
) -> tuple[PrivateKey, x509.Certificate]:
    """``<usage>.key`` and ``<usage>.crt`` from a holder's folder, laid out as ``gwx pki issue`` writes them.

    The key's passphrase comes from ``passphrase_env``; an unencrypted key loads only when that variable is unset.
    """
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a key folder (it should hold {usage}.key and {usage}.crt)")
    pem = read_file(folder / f"{usage}.key", "the key")
    secret = os.environ.get(passphrase_env)
    key = key_from_pem(pem, secret.encode("utf-8") if secret else None, source=str(folder / f"{usage}.key"))
    return key, load_certificate(folder / f"{usage}.crt")
