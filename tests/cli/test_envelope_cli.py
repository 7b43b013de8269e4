"""``gwx seal``, ``inspect``, ``open`` and ``receipt make|verify`` end to end, through the real console script.

In a folder with a copy of the examples, as a clerk would: ``gwx pki init`` and ``pki issue`` (three departments, an
outsider and a node), ``doc new`` and ``doc sign`` for the letter (two attachments), then seal it as the node,
inspect it without a key, open it as each recipient, make receipts and verify them against what was sent.
Failures exit 1 with one line on stderr, ``gwx: …``, and no traceback; an attachment that does not verify is never
published (neither under its name nor as the ``.partial`` file it is decrypted into).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

CA_PASSPHRASE = "cli-ca-passphrase"
KEY_PASSPHRASE = "cli-key-passphrase"
DEPARTMENTS = {
    "gd.gov.office": "广东省人民政府办公厅",
    "gd.gov.czt": "广东省财政厅",
    "gd.gov.gxt": "广东省工业和信息化厅",
    "gz.gov.office": "广州市人民政府办公厅",  # not addressed by the letter
}
NODE = "gd-hub"
LETTER_RECIPIENTS = ["gd.gov.czt", "gd.gov.office"]
ATTACHMENTS = ("share-catalogue.csv", "contacts.txt")
# ``gwx: <headline>：<detail>``; the headline is the kind of failure in the clerk's words (配置错误, 无法解密, …).
HEADLINE = re.compile(r"gwx: ([^：\s][^：]*)：\S")


def gwx_executable() -> str:
    beside = Path(sys.executable).parent / "gwx"
    if beside.is_file():
        return str(beside)
    found = shutil.which("gwx")
    assert found is not None, "the gwx console script is not installed (pip install -e .)"
    return found


GWX = gwx_executable()


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def ok(result: Result) -> Result:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    assert "Traceback" not in result.stderr
    return result


def refused(result: Result, contains: str | None = None, *, headlines: tuple[str, ...] = ()) -> str:
    """Exit 1, exactly one line on stderr, ``gwx: <headline>：<detail>``, no traceback; that line."""
    assert result.returncode == 1, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    m = HEADLINE.match(lines[0])
    assert m is not None, lines[0]
    if headlines:
        assert m.group(1) in headlines, lines[0]
    if contains is not None:
        assert contains in lines[0], lines[0]
    return lines[0]


@dataclass
class Site:
    folder: Path

    def run(self, *args: str | Path) -> Result:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GWX_")}
        env.update(GWX_CA_PASSPHRASE=CA_PASSPHRASE, GWX_KEY_PASSPHRASE=KEY_PASSPHRASE)
        done = subprocess.run(
            [GWX, *map(str, args)],
            cwd=self.folder,
            env=env,
            capture_output=True,
            text=True,
            encoding="utf-8",
            check=False,
            timeout=300,
        )
        return Result(done.returncode, done.stdout, done.stderr)

    @staticmethod
    def trust() -> list[str]:
        return ["--root", "ca/root.crt", "--crl", "ca/crl.pem"]

    @staticmethod
    def keys(code: str) -> list[str]:
        return ["--keys", f"ca/issued/{code}"]

    def seal(self, document: str, output: str, *extra: str) -> Result:
        return self.run(
            "seal",
            document,
            *self.trust(),
            "--node-keys",
            f"ca/issued/{NODE}",
            "--certs",
            "ca/issued",
            "--attachments",
            "attachments",
            "-o",
            output,
            *extra,
        )

    def open(self, package: str, code: str, output: str) -> Result:
        return self.run("open", package, *self.keys(code), *self.trust(), "-o", output)

    def inspect_json(self, package: str) -> dict[str, object]:
        data: dict[str, object] = json.loads(ok(self.run("inspect", package, *self.trust(), "--json")).stdout)
        return data


def make_site(folder: Path, examples_dir: Path) -> Site:
    shutil.copytree(examples_dir, folder)
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    site = Site(folder)
    ok(site.run("pki", "init", "--home", "ca", "--name", "广东省电子政务安全中心", "--code", "gd.gov.ca"))
    for code, name in DEPARTMENTS.items():
        ok(site.run("pki", "issue", "--home", "ca", "--code", code, "--name", name, "--role", "department"))
    ok(site.run("pki", "issue", "--home", "ca", "--code", NODE, "--name", "广东省公文交换节点", "--role", "node"))
    ok(site.run("doc", "new", "letter.toml", "-o", "letter.xml"))
    ok(
        site.run(
            "doc",
            "sign",
            "letter.xml",
            "--key",
            "ca/issued/gd.gov.gxt/signing.key",
            "--cert",
            "ca/issued/gd.gov.gxt/signing.crt",
        )
    )
    return site


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, examples_dir: Path) -> Site:
    return make_site(tmp_path_factory.mktemp("envelope-cli") / "site", examples_dir)


@pytest.fixture(scope="module")
def sealed(site: Site) -> Path:
    result = ok(site.seal("letter.signed.xml", "letter.gwx"))
    assert "已封装：letter.gwx" in result.stdout
    assert "gd.gov.czt、gd.gov.office" in result.stdout
    assert "附件：2 个" in result.stdout
    return site.folder / "letter.gwx"


def envelope_of(package: Path) -> bytes:
    with zipfile.ZipFile(package) as zf:
        return zf.read("envelope.xml")


# --- the clerk's way through ------------------------------------------------------------------------------------


def test_sealed_package(site: Site, sealed: Path) -> None:
    with zipfile.ZipFile(sealed) as zf:
        names = [i.filename for i in zf.infolist()]
        assert names == ["mimetype", "parts/part-1", "parts/part-2", "envelope.xml"]
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
        assert zf.read("mimetype") == b"application/vnd.gwexchange.envelope+zip"
    envelope = envelope_of(sealed)
    title = "广东省工业和信息化厅关于商请提供政务数据共享目录的函".encode()
    assert title in (site.folder / "letter.signed.xml").read_bytes()
    assert title not in sealed.read_bytes()  # sealed: the document is not readable in the package
    assert b"<env:Kind>document</env:Kind>" in envelope


def test_inspect_json(site: Site, sealed: Path) -> None:
    summary = site.inspect_json("letter.gwx")
    assert summary["kind"] == "document"
    assert summary["sender_department"] == "gd.gov.gxt"
    assert summary["sender_node"] == NODE
    assert summary["node_signature"] == "valid"
    assert summary["recipients"] == LETTER_RECIPIENTS
    assert summary["classification"] == "公开"
    assert summary["sha256"] == hashlib.sha256(envelope_of(sealed)).hexdigest()
    parts = summary["parts"]
    assert isinstance(parts, list)
    assert [(p["cid"], p["file"]) for p in parts] == [("part-1", ATTACHMENTS[0]), ("part-2", ATTACHMENTS[1])]
    with zipfile.ZipFile(sealed) as zf:
        for p in parts:
            octets = zf.read(f"parts/{p['cid']}")
            assert p["size"] == len(octets) == (site.folder / "attachments" / p["file"]).stat().st_size + 28
            assert p["sha256"] == hashlib.sha256(octets).hexdigest()


def test_inspect_text(site: Site, sealed: Path) -> None:
    out = ok(site.run("inspect", "letter.gwx", *site.trust())).stdout
    assert "交换信封：节点签名有效" in out
    assert "收文机关：gd.gov.czt、gd.gov.office" in out
    assert f"信封 SHA-256：{hashlib.sha256(envelope_of(sealed)).hexdigest()}" in out


@pytest.mark.parametrize("code", LETTER_RECIPIENTS)
def test_open_as_each_recipient(site: Site, sealed: Path, code: str) -> None:
    out_dir = f"opened-{code}"
    result = ok(site.open("letter.gwx", code, out_dir))
    message_id = site.inspect_json("letter.gwx")["message_id"]
    folder = site.folder / out_dir
    assert (folder / f"{message_id}.signed.xml").read_bytes() == (site.folder / "letter.signed.xml").read_bytes()
    for name in ATTACHMENTS:
        assert (folder / name).read_bytes() == (site.folder / "attachments" / name).read_bytes()
    assert sorted(p.name for p in folder.iterdir()) == sorted([f"{message_id}.signed.xml", *ATTACHMENTS])
    assert "已拆封：粤工信函〔2026〕305号" in result.stdout
    assert "签名有效" in result.stdout


def test_receipts_made_and_verified(site: Site, sealed: Path) -> None:
    made = ok(
        site.run(
            "receipt",
            "make",
            "letter.gwx",
            "--kind",
            "签收",
            *site.keys("gd.gov.czt"),
            *site.trust(),
            "-o",
            "czt.receipt.xml",
        )
    )
    assert "已出具签收回执" in made.stdout
    ok(
        site.run(
            "receipt",
            "make",
            "letter.gwx",
            "--kind",
            "退回",
            "--reason",
            "附件格式不符，请改为 PDF 后重发",
            *site.keys("gd.gov.office"),
            *site.trust(),
            "-o",
            "office.receipt.xml",
        )
    )
    ok(
        site.run(
            "receipt",
            "make",
            "letter.gwx",
            "--kind",
            "送达",
            *site.keys("gd.gov.office"),
            *site.trust(),
            "-o",
            "office.delivered.xml",
        )
    )
    message_id = site.inspect_json("letter.gwx")["message_id"]
    for file, kind, answerer, reason in (
        ("czt.receipt.xml", "签收", "gd.gov.czt", None),
        ("office.receipt.xml", "退回", "gd.gov.office", "附件格式不符，请改为 PDF 后重发"),
        ("office.delivered.xml", "送达", "gd.gov.office", None),
    ):
        verified = json.loads(
            ok(
                site.run(
                    "receipt",
                    "verify",
                    file,
                    "--envelope",
                    "letter.gwx",
                    "--document",
                    "letter.signed.xml",
                    *site.trust(),
                    "--json",
                )
            ).stdout
        )
        assert verified["verified"] is True
        assert (verified["kind"], verified["answerer"], verified["role"]) == (kind, answerer, "department")
        assert verified["message_id"] == message_id
        assert verified["reason"] == reason
    text = ok(
        site.run(
            "receipt",
            "verify",
            "office.receipt.xml",
            "--envelope",
            "letter.gwx",
            "--document",
            "letter.signed.xml",
            *site.trust(),
        )
    ).stdout
    assert "回执有效：退回" in text and "理由：附件格式不符" in text


# --- refusals ---------------------------------------------------------------------------------------------------


def test_open_by_a_department_not_addressed(site: Site, sealed: Path) -> None:
    refused(site.open("letter.gwx", "gz.gov.office", "opened-outsider"), "not addressed to gz.gov.office")
    assert not (site.folder / "opened-outsider").exists() or not any((site.folder / "opened-outsider").iterdir())


def test_open_without_the_key_passphrase(site: Site, sealed: Path, tmp_path: Path) -> None:
    env_site = Site(site.folder)
    result = subprocess.run(
        [GWX, "open", "letter.gwx", *env_site.keys("gd.gov.czt"), *env_site.trust(), "-o", str(tmp_path / "o")],
        cwd=site.folder,
        env={k: v for k, v in os.environ.items() if not k.startswith("GWX_")},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    refused(Result(result.returncode, result.stdout, result.stderr))
    assert not (tmp_path / "o").exists()


def test_receipt_make_refusals(site: Site, sealed: Path) -> None:
    refused(
        site.run(
            "receipt",
            "make",
            "letter.gwx",
            "--kind",
            "退回",
            *site.keys("gd.gov.czt"),
            *site.trust(),
            "-o",
            "no-reason.xml",
        ),
        "must give a reason",
    )
    refused(
        site.run(
            "receipt",
            "make",
            "letter.gwx",
            "--kind",
            "投递失败",
            "--reason",
            "x",
            *site.keys("gd.gov.czt"),
            *site.trust(),
            "-o",
            "failed.xml",
        ),
        "reported by nodes",
    )
    refused(
        site.run(
            "receipt",
            "make",
            "letter.gwx",
            "--kind",
            "签收",
            *site.keys("gz.gov.office"),
            *site.trust(),
            "-o",
            "outsider.xml",
        ),
        "not addressed to gz.gov.office",
    )
    for name in ("no-reason.xml", "failed.xml", "outsider.xml"):
        assert not (site.folder / name).exists()


def test_receipt_verify_refusals(site: Site, sealed: Path) -> None:
    ok(
        site.run(
            "receipt",
            "make",
            "letter.gwx",
            "--kind",
            "签收",
            *site.keys("gd.gov.czt"),
            *site.trust(),
            "-o",
            "czt.signed-for.xml",
        )
    )
    ok(site.run("doc", "new", "notice.toml", "-o", "notice.xml"))
    ok(
        site.run(
            "doc",
            "sign",
            "notice.xml",
            "--key",
            "ca/issued/gd.gov.office/signing.key",
            "--cert",
            "ca/issued/gd.gov.office/signing.crt",
        )
    )
    # Checked against another document than the one sent in the envelope.
    refused(
        site.run(
            "receipt",
            "verify",
            "czt.signed-for.xml",
            "--envelope",
            "letter.gwx",
            "--document",
            "notice.signed.xml",
            *site.trust(),
        ),
        "another document",
    )
    # A changed receipt.
    data = (site.folder / "czt.signed-for.xml").read_bytes()
    (site.folder / "changed.receipt.xml").write_bytes(data.replace("签收".encode(), "送达".encode()))
    refused(
        site.run(
            "receipt",
            "verify",
            "changed.receipt.xml",
            "--envelope",
            "letter.gwx",
            "--document",
            "letter.signed.xml",
            *site.trust(),
        ),
        "digest does not match",
    )
    # Not a receipt at all.
    refused(
        site.run(
            "receipt",
            "verify",
            "letter.signed.xml",
            "--envelope",
            "letter.gwx",
            "--document",
            "letter.signed.xml",
            *site.trust(),
        ),
        "not a gwexchange receipt",
    )


def test_seal_refusals(site: Site, sealed: Path) -> None:
    (site.folder / "no-certs").mkdir(exist_ok=True)
    refused(
        site.run(
            "seal",
            "letter.signed.xml",
            *site.trust(),
            "--node-keys",
            f"ca/issued/{NODE}",
            "--certs",
            "no-certs",
            "--attachments",
            "attachments",
            "-o",
            "x.gwx",
        )
    )
    refused(
        site.run(
            "seal",
            "letter.signed.xml",
            *site.trust(),
            "--node-keys",
            "ca/issued/gd.gov.gxt",
            "--certs",
            "ca/issued",
            "--attachments",
            "attachments",
            "-o",
            "x.gwx",
        )
    )
    refused(
        site.run(
            "seal",
            "letter.signed.xml",
            *site.trust(),
            "--node-keys",
            f"ca/issued/{NODE}",
            "--certs",
            "ca/issued",
            "-o",
            "x.gwx",
        ),
        "give --attachments",
    )
    refused(site.seal("letter.xml", "x.gwx"), "not signed")
    assert not (site.folder / "x.gwx").exists()
    assert not list(site.folder.glob(".x.gwx*"))


def test_inspect_refusals(site: Site, sealed: Path, tmp_path: Path) -> None:
    refused(site.run("inspect", "letter.signed.xml", *site.trust()), "not an envelope package")
    refused(site.run("inspect", "no-such.gwx", *site.trust()))


def copy_with_damaged_member(source: Path, target: Path, member: str, offset: int, *, fix_crc: bool) -> Path:
    """A copy of the package with one byte of ``member`` flipped; with ``fix_crc`` the ZIP's CRC is made to match,
    so that only the cryptography can find the damage."""
    raw = bytearray(source.read_bytes())
    with zipfile.ZipFile(source) as zf:
        infos = zf.infolist()
    members = []
    for info in infos:
        name_length = int.from_bytes(raw[info.header_offset + 26 : info.header_offset + 28], "little")
        extra_length = int.from_bytes(raw[info.header_offset + 28 : info.header_offset + 30], "little")
        start = info.header_offset + 30 + name_length + extra_length
        data = bytearray(raw[start : start + info.compress_size])
        if info.filename == member:
            data[offset % len(data)] ^= 0x01
        members.append((info.filename, bytes(data)))
    if fix_crc:
        with zipfile.ZipFile(target, "w") as zf:
            for name, data in members:
                zf.writestr(zipfile.ZipInfo(name), data)
    else:
        with zipfile.ZipFile(source) as zf:
            info = zf.getinfo(member)
        name_length = int.from_bytes(raw[info.header_offset + 26 : info.header_offset + 28], "little")
        extra_length = int.from_bytes(raw[info.header_offset + 28 : info.header_offset + 30], "little")
        raw[info.header_offset + 30 + name_length + extra_length + offset % info.compress_size] ^= 0x01
        target.write_bytes(bytes(raw))
    return target


@pytest.mark.parametrize("fix_crc", [False, True], ids=["zip-crc-finds-it", "gcm-tag-finds-it"])
@pytest.mark.parametrize("offset", [0, 100, -1], ids=["nonce", "ciphertext", "tag"])
def test_open_a_package_with_a_damaged_part_publishes_no_attachment(
    site: Site, sealed: Path, offset: int, fix_crc: bool
) -> None:
    name = f"damaged-{offset}-{fix_crc}.gwx"
    copy_with_damaged_member(sealed, site.folder / name, "parts/part-1", offset, fix_crc=fix_crc)
    out = site.folder / f"opened-{name}"
    refused(site.open(name, "gd.gov.czt", out.name), headlines=("无法解密", "信封被拒绝"))
    assert not (out / ATTACHMENTS[0]).exists()
    assert not (out / f".{ATTACHMENTS[0]}.partial").exists()
    assert not list(out.glob("*.partial")) and not list(out.glob(".*.partial"))
    # The intact package still opens.
    ok(site.open("letter.gwx", "gd.gov.czt", f"opened-again-{offset}-{fix_crc}"))


def test_open_never_follows_a_planted_link_nor_overwrites_a_file(site: Site, sealed: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("not yours", encoding="utf-8")
    planted = site.folder / "planted"
    planted.mkdir()
    (planted / ATTACHMENTS[0]).symlink_to(victim)
    refused(site.open("letter.gwx", "gd.gov.czt", planted.name), contains="never overwrites")
    assert victim.read_text(encoding="utf-8") == "not yours"
    assert (planted / ATTACHMENTS[0]).is_symlink()
    assert not list(planted.glob(".*.partial"))  # no scratch file left behind

    existing = site.folder / "existing"
    existing.mkdir()
    (existing / ATTACHMENTS[1]).write_text("the clerk's own file", encoding="utf-8")
    refused(site.open("letter.gwx", "gd.gov.czt", existing.name), contains=ATTACHMENTS[1])
    assert (existing / ATTACHMENTS[1]).read_text(encoding="utf-8") == "the clerk's own file"

    fresh = site.folder / "fresh"
    ok(site.open("letter.gwx", "gd.gov.czt", fresh.name))
    assert {stat.S_IMODE(p.stat().st_mode) for p in fresh.iterdir()} == {0o600}  # the documents are the clerk's alone
