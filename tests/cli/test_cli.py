"""The real ``gwx`` console script, run as a clerk runs it: in a folder of copied examples, with passphrases in
the environment, checking exit codes (0 ok, 1 refused, 2 bad usage) and that every failure is one plain line."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer
from cryptography import x509

from gwexchange.cli import app
from gwexchange.envelope.description import load_description_file

CA_PASSPHRASE = "cli-ca-passphrase"
KEY_PASSPHRASE = "cli-key-passphrase"
DEPARTMENTS = {
    "gd.gov.office": "广东省人民政府办公厅",
    "gd.gov.czt": "广东省财政厅",
    "gd.gov.gxt": "广东省工业和信息化厅",
}
# The headlines ``gwx`` puts before an error, by kind of failure.
HEADLINES = ("公文格式错误", "XML 输入被拒绝", "配置错误", "签名无效", "证书不可信", "验证失败", "文件错误", "错误")


def gwx_executable() -> str:
    beside = Path(sys.executable).parent / "gwx"
    if beside.is_file():
        return str(beside)
    found = shutil.which("gwx")
    assert found is not None, "the gwx console script is not installed (pip install -e .)"
    return found


GWX = gwx_executable()


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any GWX_* setting of the machine, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GWX_")}
    env.update(extra)
    return env


PASSPHRASES = {"GWX_CA_PASSPHRASE": CA_PASSPHRASE, "GWX_KEY_PASSPHRASE": KEY_PASSPHRASE}


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def gwx(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> Result:
    done = subprocess.run(
        [GWX, *map(str, args)],
        cwd=cwd,
        env=clean_env(**PASSPHRASES) if env is None else env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=False,
        timeout=300,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def ok(result: Result) -> Result:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    assert "Traceback" not in result.stderr
    return result


def refused(result: Result, headline: str | None = None, *, contains: str | None = None) -> str:
    """Exit 1 with exactly one line on stderr, ``gwx: <headline>：<detail>``, and no traceback; the line."""
    assert result.returncode == 1, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    assert "Traceback" not in result.stderr
    assert "Traceback" not in result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    m = re.match(r"gwx: (.+?)：", line)
    assert m is not None, line
    assert m.group(1) in HEADLINES, line
    if headline is not None:
        assert m.group(1) == headline, line
    if contains is not None:
        assert contains in line, line
    return line


def usage_error(result: Result) -> None:
    assert result.returncode == 2, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    assert "Traceback" not in result.stderr
    assert "Usage:" in result.stderr


def copy_examples(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    for path in [target, *target.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return target


def tamper_one_byte(data: bytes, marker: bytes) -> bytes:
    """Flip one bit of the last byte of the UTF-8 character that ``marker`` starts with (still valid UTF-8)."""
    i = data.index(marker) + 2
    return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]


@dataclass
class Site:
    """A folder with a CA home (``ca``) and a copy of the examples, as a clerk would have."""

    folder: Path

    @property
    def home(self) -> Path:
        return self.folder / "ca"

    def run(self, *args: str | Path, env: dict[str, str] | None = None) -> Result:
        return gwx(*args, cwd=self.folder, env=env)

    def key_options(self, code: str) -> list[str]:
        folder = f"ca/issued/{code}"
        return ["--key", f"{folder}/signing.key", "--cert", f"{folder}/signing.crt"]

    def trust_options(self) -> list[str]:
        return ["--root", "ca/root.crt", "--crl", "ca/crl.pem"]

    def issued(self) -> list[dict[str, object]]:
        return json.loads(ok(self.run("pki", "list", "--home", "ca", "--json")).stdout)

    def serial(self, code: str, usage: str = "signing") -> str:
        return next(str(e["serial"]) for e in self.issued() if e["code"] == code and e["usage"] == usage)


def make_site(folder: Path, examples_dir: Path, departments: dict[str, str] = DEPARTMENTS) -> Site:
    copy_examples(examples_dir, folder)
    site = Site(folder)
    ok(site.run("pki", "init", "--home", "ca", "--name", "广东省电子政务安全中心", "--code", "gd.gov.ca"))
    for code, name in departments.items():
        ok(site.run("pki", "issue", "--home", "ca", "--code", code, "--name", name, "--role", "department"))
    return site


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, examples_dir: Path) -> Site:
    """One CA with the three departments of the examples, shared by the tests that do not revoke."""
    return make_site(tmp_path_factory.mktemp("cli") / "site", examples_dir)


@pytest.fixture(scope="module")
def signed_notice(site: Site) -> Path:
    ok(site.run("doc", "new", "notice.toml", "-o", "notice.xml"))
    ok(site.run("doc", "sign", "notice.xml", *site.key_options("gd.gov.office")))
    return site.folder / "notice.signed.xml"


# --- --help --------------------------------------------------------------------------------------------------


def command_paths() -> list[list[str]]:
    """Every command and command group of gwx, as the words typed after ``gwx``."""
    paths: list[list[str]] = [[]]

    def walk(command: object, prefix: list[str]) -> None:
        for name, sub in (getattr(command, "commands", None) or {}).items():  # a group's subcommands
            paths.append([*prefix, name])
            walk(sub, [*prefix, name])

    walk(typer.main.get_command(app), [])
    return paths


def test_command_list_is_complete() -> None:
    words = {" ".join(p) for p in command_paths()}
    expected = {
        "pki init",
        "pki issue",
        "pki list",
        "pki revoke",
        "pki crl",
        "doc new",
        "doc sign",
        "doc show",
        "verify",
    }
    assert expected <= words


@pytest.mark.parametrize("words", command_paths(), ids=lambda p: " ".join(p) or "gwx")
def test_help(tmp_path: Path, words: list[str]) -> None:
    result = ok(gwx(*words, "--help", cwd=tmp_path))
    assert "Usage:" in result.stdout
    assert result.stderr == ""


# --- gwx pki -------------------------------------------------------------------------------------------------


def test_pki_init_and_issue(site: Site) -> None:
    for name in ("root.crt", "root.key", "crl.pem", "index.json"):
        assert (site.home / name).is_file()
    assert (site.home / "root.key").read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    for code in DEPARTMENTS:
        for usage in ("signing", "encryption"):
            key = site.home / "issued" / code / f"{usage}.key"
            assert key.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
            assert (site.home / "issued" / code / f"{usage}.crt").is_file()


def test_pki_init_output(tmp_path: Path) -> None:
    result = ok(gwx("pki", "init", "--home", "ca", "--name", "中心", "--code", "gd.gov.ca", cwd=tmp_path))
    assert "已创建根证书" in result.stdout
    root = x509.load_pem_x509_certificate((tmp_path / "ca" / "root.crt").read_bytes())
    assert f"{root.serial_number:x}" in result.stdout
    refused(gwx("pki", "init", "--home", "ca", "--name", "中心", "--code", "gd.gov.ca", cwd=tmp_path), "配置错误")


def test_pki_issue_output_and_node(tmp_path: Path) -> None:
    ok(gwx("pki", "init", "--home", "ca", "--name", "中心", "--code", "gd.gov.ca", cwd=tmp_path))
    dept = ok(
        gwx(
            "pki",
            "issue",
            "--home",
            "ca",
            "--code",
            "gd.gov.czt",
            "--name",
            "财政厅",
            "--role",
            "department",
            cwd=tmp_path,
        )
    )
    assert [line.split()[0] for line in dept.stdout.splitlines()] == ["signing", "encryption"]
    node = ok(gwx("pki", "issue", "--home", "ca", "--code", "gd-hub", "--name", "节点", "--role", "node", cwd=tmp_path))
    assert [line.split()[0] for line in node.stdout.splitlines()] == ["node"]
    assert (tmp_path / "ca" / "issued" / "gd-hub" / "node.crt").is_file()
    refused(
        gwx("pki", "issue", "--home", "ca", "--code", "x.y", "--name", "根", "--role", "root", cwd=tmp_path), "配置错误"
    )


def test_pki_list(site: Site) -> None:
    result = ok(site.run("pki", "list", "--home", "ca"))
    lines = result.stdout.splitlines()
    assert len(lines) == 2 * len(DEPARTMENTS)
    for code, name in DEPARTMENTS.items():
        assert any(code in line and name in line and "有效" in line for line in lines)


def test_pki_list_json(site: Site) -> None:
    issued = site.issued()
    assert len(issued) == 2 * len(DEPARTMENTS)
    assert {(e["code"], e["usage"]) for e in issued} == {
        (code, usage) for code in DEPARTMENTS for usage in ("signing", "encryption")
    }
    for e in issued:
        assert set(e) >= {"serial", "code", "name", "role", "usage", "not_after", "revoked_at", "reason"}
        assert e["revoked_at"] is None
        assert e["role"] == "department"
        cert = x509.load_pem_x509_certificate(
            (site.home / "issued" / str(e["code"]) / f"{e['usage']}.crt").read_bytes()
        )
        assert e["serial"] == f"{cert.serial_number:x}"


def test_pki_list_needs_no_passphrase(site: Site) -> None:
    assert json.loads(ok(site.run("pki", "list", "--home", "ca", "--json", env=clean_env())).stdout)


def test_pki_list_of_nothing(tmp_path: Path) -> None:
    refused(gwx("pki", "list", "--home", "nothing", cwd=tmp_path), "配置错误")


def test_pki_revoke_and_crl(tmp_path: Path, examples_dir: Path) -> None:
    site = make_site(tmp_path / "site", examples_dir, {"gd.gov.czt": "广东省财政厅"})
    serial = site.serial("gd.gov.czt")
    result = ok(site.run("pki", "revoke", serial, "--reason", "keyCompromise", "--home", "ca"))
    assert "已吊销" in result.stdout
    assert serial in result.stdout
    entry = next(e for e in site.issued() if e["serial"] == serial)
    assert entry["reason"] == "keyCompromise"
    assert entry["revoked_at"]
    crl = x509.load_pem_x509_crl((site.home / "crl.pem").read_bytes())
    revoked = crl.get_revoked_certificate_by_serial_number(int(serial, 16))
    assert revoked is not None
    assert revoked.extensions.get_extension_for_class(x509.CRLReason).value.reason is x509.ReasonFlags.key_compromise
    assert "已吊销" in ok(site.run("pki", "list", "--home", "ca")).stdout

    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert "已发布证书吊销列表" in ok(site.run("pki", "crl", "--home", "ca")).stdout
    fresh = x509.load_pem_x509_crl((site.home / "crl.pem").read_bytes())
    assert fresh.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == number + 1
    assert fresh.get_revoked_certificate_by_serial_number(int(serial, 16)) is not None

    refused(site.run("pki", "revoke", serial, "--home", "ca"), "配置错误", contains="already revoked")
    refused(site.run("pki", "revoke", "abcdef", "--home", "ca"), "配置错误")
    usage_error(site.run("pki", "revoke", serial, "--reason", "boredom", "--home", "ca"))


def test_pki_wrong_or_missing_ca_passphrase(site: Site) -> None:
    wrong = clean_env(GWX_CA_PASSPHRASE="not-the-passphrase", GWX_KEY_PASSPHRASE=KEY_PASSPHRASE)
    refused(site.run("pki", "crl", "--home", "ca", env=wrong), "配置错误", contains="passphrase")
    missing = clean_env(GWX_KEY_PASSPHRASE=KEY_PASSPHRASE)
    refused(site.run("pki", "crl", "--home", "ca", env=missing), "配置错误", contains="GWX_CA_PASSPHRASE")
    refused(
        site.run("pki", "issue", "--home", "ca", "--code", "a.b", "--name", "甲", "--role", "department", env=missing),
        "配置错误",
    )


def test_pki_init_without_passphrase(tmp_path: Path) -> None:
    refused(
        gwx("pki", "init", "--home", "ca", "--name", "中心", "--code", "gd.gov.ca", cwd=tmp_path, env=clean_env()),
        "配置错误",
    )
    assert not (tmp_path / "ca" / "root.key").exists()
    short = clean_env(GWX_CA_PASSPHRASE="short")
    refused(
        gwx("pki", "init", "--home", "ca", "--name", "中心", "--code", "gd.gov.ca", cwd=tmp_path, env=short), "配置错误"
    )


def test_pki_passphrase_file_and_unsafe_keys(tmp_path: Path) -> None:
    (tmp_path / "ca.pass").write_text("passphrase-in-a-file\n", encoding="utf-8")
    env = clean_env()
    ok(
        gwx(
            "pki",
            "init",
            "--home",
            "ca",
            "--name",
            "中心",
            "--code",
            "gd.gov.ca",
            "--passphrase-file",
            "ca.pass",
            cwd=tmp_path,
            env=env,
        )
    )
    ok(
        gwx(
            "pki", "issue", "--home", "ca", "--code", "gd.gov.czt", "--name", "财政厅", "--role", "department",
            "--passphrase-file", "ca.pass", "--unsafe-unencrypted-keys", cwd=tmp_path, env=env,
        )
    )  # fmt: skip
    key = (tmp_path / "ca" / "issued" / "gd.gov.czt" / "signing.key").read_bytes()
    assert key.startswith(b"-----BEGIN PRIVATE KEY-----")
    refused(gwx("pki", "crl", "--home", "ca", cwd=tmp_path, env=env), "配置错误")
    ok(gwx("pki", "crl", "--home", "ca", "--passphrase-file", "ca.pass", cwd=tmp_path, env=env))


# --- gwx doc -------------------------------------------------------------------------------------------------


def test_doc_new(site: Site) -> None:
    result = ok(site.run("doc", "new", "request.toml", "-o", "request.draft.xml"))
    assert "已起草" in result.stdout
    assert "粤财办〔2026〕88号" in result.stdout
    from gwexchange import xmlsafe
    from gwexchange.envelope.xmlform import document_from_element

    written = document_from_element(xmlsafe.parse((site.folder / "request.draft.xml").read_bytes()))
    assert written == load_description_file(site.folder / "request.toml")


def test_doc_new_default_output(site: Site) -> None:
    ok(site.run("doc", "new", "joint-notice.toml"))
    assert (site.folder / "joint-notice.xml").is_file()


def test_doc_new_invalid_description(site: Site) -> None:
    bad = site.folder / "bad.toml"
    bad.write_text(
        (site.folder / "request.toml").read_text(encoding="utf-8").replace('"000007"', '"7"'), encoding="utf-8"
    )
    refused(site.run("doc", "new", "bad.toml"), "公文格式错误", contains="份号")
    bad.write_text("kind = [\n", encoding="utf-8")
    refused(site.run("doc", "new", "bad.toml"), "公文格式错误", contains="TOML")


def test_doc_sign_default_output(site: Site, signed_notice: Path) -> None:
    assert signed_notice.is_file()
    data = signed_notice.read_bytes()
    assert b'<gw:Signing department="gd.gov.office"' in data
    assert b"<ds:Signature" in data


def test_doc_show(site: Site, signed_notice: Path) -> None:
    out = ok(site.run("doc", "show", signed_notice.name)).stdout
    for expected in (
        "份号：000123",
        "密级：内部",
        "紧急程度：加急",
        "文种：通知",
        "发文机关：广东省人民政府办公厅（gd.gov.office）",
        "发文字号：粤办发〔2026〕12号",
        "标题：广东省人民政府办公厅关于印发《广东省电子政务建设方案》的通知",
        "正文：",
        "发文机关署名：广东省人民政府办公厅",
        "成文日期：2026年11月20日",
        "附注：（此件公开发布至各地级以上市人民政府。）",
        "印发：广东省人民政府办公厅秘书处  2026年11月21日印发",
        "签署（未验证）：gd.gov.office",
    ):
        assert expected in out, expected
    assert out.index("份号") < out.index("标题") < out.index("正文") < out.index("成文日期")


def test_doc_show_request(site: Site) -> None:
    ok(site.run("doc", "new", "request.toml", "-o", "request.xml"))
    out = ok(site.run("doc", "show", "request.xml")).stdout
    assert "密级：秘密★1年" in out
    assert "签发人：李明" in out
    assert "主送机关：省人民政府办公厅" in out
    assert "附件说明：" in out
    assert "1. 政务外网安全改造项目预算明细表" in out
    assert "签署" not in out  # a draft


def test_doc_show_json(site: Site, signed_notice: Path) -> None:
    data = json.loads(ok(site.run("doc", "show", signed_notice.name, "--json")).stdout)
    doc = data["document"]
    assert doc["doc_number"] == {"text": "粤办发〔2026〕12号"}
    assert doc["classification"] == "内部"
    assert doc["date"] == "2026-11-20"
    assert [d["code"] for d in doc["issuers"]] == ["gd.gov.office"]
    assert data["signings_unverified"][0][0] == "gd.gov.office"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", data["signings_unverified"][0][1])


def test_doc_sign_needs_key_passphrase(site: Site) -> None:
    ok(site.run("doc", "new", "letter.toml", "-o", "letter-nopass.xml"))
    env = clean_env(GWX_CA_PASSPHRASE=CA_PASSPHRASE)
    refused(site.run("doc", "sign", "letter-nopass.xml", *site.key_options("gd.gov.gxt"), env=env), "配置错误")
    wrong = clean_env(GWX_KEY_PASSPHRASE="wrong-passphrase")
    refused(site.run("doc", "sign", "letter-nopass.xml", *site.key_options("gd.gov.gxt"), env=wrong), "配置错误")
    assert not (site.folder / "letter-nopass.signed.xml").exists()


def test_doc_sign_wrong_department(site: Site) -> None:
    ok(site.run("doc", "new", "letter.toml", "-o", "letter-wrong.xml"))
    refused(
        site.run("doc", "sign", "letter-wrong.xml", *site.key_options("gd.gov.czt")), "配置错误", contains="gd.gov.gxt"
    )


def test_doc_sign_with_encryption_key_is_refused_somewhere(site: Site) -> None:
    """An encryption certificate must not yield a document that verifies."""
    ok(site.run("doc", "new", "letter.toml", "-o", "letter-enc.xml"))
    folder = "ca/issued/gd.gov.gxt"
    signing = site.run(
        "doc", "sign", "letter-enc.xml", "--key", f"{folder}/encryption.key", "--cert", f"{folder}/encryption.crt"
    )
    if signing.returncode == 0:
        refused(site.run("verify", "letter-enc.signed.xml", *site.trust_options(), "--attachments", "attachments"))
    else:
        refused(signing)


# --- gwx verify ----------------------------------------------------------------------------------------------


def test_verify(site: Site, signed_notice: Path) -> None:
    out = ok(site.run("verify", signed_notice.name, *site.trust_options())).stdout
    assert "验证通过" in out
    assert "粤办发〔2026〕12号" in out
    assert "广东省人民政府办公厅（gd.gov.office）" in out
    assert hashlib.sha256(signed_notice.read_bytes()).hexdigest() in out


def test_verify_json(site: Site, signed_notice: Path) -> None:
    data = json.loads(ok(site.run("verify", signed_notice.name, *site.trust_options(), "--json")).stdout)
    assert data["verified"] is True
    assert data["doc_number"] == "粤办发〔2026〕12号"
    assert data["title"] == "广东省人民政府办公厅关于印发《广东省电子政务建设方案》的通知"
    assert data["issuers"] == ["gd.gov.office"]
    (signature,) = data["signatures"]
    assert signature["department"] == "gd.gov.office"
    assert signature["signer"] == "广东省人民政府办公厅"
    assert signature["certificate_serial"] == site.serial("gd.gov.office")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", signature["signed_at"])
    assert data["attachments_checked"] == []
    assert data["sha256"] == hashlib.sha256(signed_notice.read_bytes()).hexdigest()


def test_verify_with_environment_variables(site: Site, signed_notice: Path) -> None:
    env = clean_env(GWX_ROOT="ca/root.crt", GWX_CRL="ca/crl.pem")
    ok(site.run("verify", signed_notice.name, env=env))


def test_verify_after_one_byte_tamper(site: Site, signed_notice: Path) -> None:
    data = signed_notice.read_bytes()
    tampered = tamper_one_byte(data, "印发《".encode())
    assert len(tampered) == len(data)
    assert sum(a != b for a, b in zip(tampered, data, strict=True)) == 1
    (site.folder / "notice.tampered.xml").write_bytes(tampered)
    line = refused(site.run("verify", "notice.tampered.xml", *site.trust_options()), "签名无效")
    assert line.startswith("gwx: 签名无效：")


def test_verify_tampered_json_prints_nothing_on_stdout(site: Site, signed_notice: Path) -> None:
    data = signed_notice.read_bytes()
    (site.folder / "notice.tampered2.xml").write_bytes(data.replace("12号".encode(), "13号".encode(), 1))
    result = site.run("verify", "notice.tampered2.xml", *site.trust_options(), "--json")
    refused(result)
    assert result.stdout == ""


def test_verify_unsigned_draft(site: Site, signed_notice: Path) -> None:
    refused(site.run("verify", "notice.xml", *site.trust_options()), "签名无效", contains="not signed")


def test_verify_without_crl(site: Site, signed_notice: Path) -> None:
    refused(site.run("verify", signed_notice.name, "--root", "ca/root.crt"), "配置错误", contains="CRL")
    ok(site.run("verify", signed_notice.name, "--root", "ca/root.crt", "--unsafe-no-revocation-check"))


def test_verify_with_another_root(tmp_path: Path, site: Site, signed_notice: Path) -> None:
    ok(gwx("pki", "init", "--home", "other", "--name", "别的中心", "--code", "other.ca", cwd=tmp_path))
    result = site.run(
        "verify", signed_notice.name, "--root", tmp_path / "other" / "root.crt", "--crl", tmp_path / "other" / "crl.pem"
    )
    refused(result, "证书不可信")


def test_verify_not_xml(site: Site) -> None:
    (site.folder / "garbage.xml").write_bytes(b"\x00\x01 not xml")
    refused(site.run("verify", "garbage.xml", *site.trust_options()), "XML 输入被拒绝")


def test_nonexistent_files(site: Site) -> None:
    refused(site.run("doc", "show", "nothing.xml"), contains="nothing.xml")
    refused(site.run("doc", "new", "nothing.toml"), contains="nothing.toml")
    refused(site.run("verify", "nothing.xml", *site.trust_options()), contains="nothing.xml")
    refused(site.run("verify", "notice.signed.xml", "--root", "none.crt", "--crl", "ca/crl.pem"), contains="none.crt")
    refused(site.run("doc", "sign", "nothing.xml", *site.key_options("gd.gov.office")), contains="nothing.xml")
    refused(site.run("doc", "sign", "notice.toml", "--key", "no.key", "--cert", "no.crt"))


def test_bad_usage_exits_2(site: Site) -> None:
    usage_error(site.run("verify", "--bogus"))
    usage_error(site.run("verify", "notice.signed.xml", "--bogus", *site.trust_options()))
    usage_error(site.run("doc", "show"))
    usage_error(site.run("doc", "frobnicate"))
    usage_error(site.run("nonsense"))
    usage_error(site.run("pki", "issue", "--home", "ca", "--code", "a.b", "--name", "甲", "--role", "king"))
    usage_error(site.run("pki", "init", "--home", "x", "--name", "甲", "--code", "a.b", "--algorithm", "dsa-1024"))


# --- a letter with attachments -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signed_letter(site: Site) -> Path:
    ok(site.run("doc", "new", "letter.toml", "-o", "letter.xml"))
    ok(site.run("doc", "sign", "letter.xml", *site.key_options("gd.gov.gxt")))
    return site.folder / "letter.signed.xml"


def test_verify_letter_with_attachments(site: Site, signed_letter: Path) -> None:
    out = ok(site.run("verify", signed_letter.name, *site.trust_options(), "--attachments", "attachments")).stdout
    assert "附件：2 个" in out
    data = json.loads(
        ok(
            site.run("verify", signed_letter.name, *site.trust_options(), "--attachments", "attachments", "--json")
        ).stdout
    )
    assert data["attachments_checked"] == ["share-catalogue.csv", "contacts.txt"]


def test_verify_letter_attachments_missing(site: Site, signed_letter: Path) -> None:
    refused(site.run("verify", signed_letter.name, *site.trust_options()), "验证失败", contains="--attachments")
    out = ok(site.run("verify", signed_letter.name, *site.trust_options(), "--no-attachments")).stdout
    assert "未检查" in out


def test_verify_letter_modified_attachment(site: Site, signed_letter: Path) -> None:
    changed = site.folder / "changed-attachments"
    shutil.copytree(site.folder / "attachments", changed)
    for path in changed.iterdir():
        path.chmod(0o644)
    with (changed / "share-catalogue.csv").open("a", encoding="utf-8") as f:
        f.write("序号,数据资源名称\n")
    refused(
        site.run("verify", signed_letter.name, *site.trust_options(), "--attachments", changed.name),
        "验证失败",
        contains="share-catalogue.csv",
    )
    same_size = (site.folder / "attachments" / "contacts.txt").read_bytes()
    (changed / "share-catalogue.csv").write_bytes((site.folder / "attachments" / "share-catalogue.csv").read_bytes())
    (changed / "contacts.txt").write_bytes(bytes([same_size[0] ^ 0x01]) + same_size[1:])
    refused(
        site.run("verify", signed_letter.name, *site.trust_options(), "--attachments", changed.name),
        "验证失败",
        contains="contacts.txt",
    )


# --- a joint document ----------------------------------------------------------------------------------------


def test_joint_document(site: Site) -> None:
    ok(site.run("doc", "new", "joint-notice.toml", "-o", "joint.xml"))
    refused(site.run("doc", "sign", "joint.xml", *site.key_options("gd.gov.gxt")), "配置错误", contains="gd.gov.czt")
    ok(site.run("doc", "sign", "joint.xml", "-o", "joint.czt.xml", *site.key_options("gd.gov.czt")))
    refused(site.run("verify", "joint.czt.xml", *site.trust_options()), "签名无效", contains="not fully signed")
    ok(
        site.run(
            "doc",
            "sign",
            "joint.czt.xml",
            "-o",
            "joint.signed.xml",
            *site.trust_options(),
            *site.key_options("gd.gov.gxt"),
        )
    )
    data = json.loads(ok(site.run("verify", "joint.signed.xml", *site.trust_options(), "--json")).stdout)
    assert [s["department"] for s in data["signatures"]] == ["gd.gov.czt", "gd.gov.gxt"]
    assert data["issuers"] == ["gd.gov.czt", "gd.gov.gxt"]
    out = ok(site.run("doc", "show", "joint.signed.xml")).stdout
    assert out.count("签署（未验证）") == 2
    refused(site.run("doc", "sign", "joint.signed.xml", *site.key_options("gd.gov.gxt")), "公文格式错误")


# --- revocation ----------------------------------------------------------------------------------------------


def test_revoked_signer_is_refused(tmp_path: Path, examples_dir: Path) -> None:
    site = make_site(tmp_path / "site", examples_dir, {"gd.gov.office": "广东省人民政府办公厅"})
    ok(site.run("doc", "new", "notice.toml", "-o", "notice.xml"))
    ok(site.run("doc", "sign", "notice.xml", *site.key_options("gd.gov.office")))
    ok(site.run("verify", "notice.signed.xml", *site.trust_options()))
    ok(site.run("pki", "revoke", site.serial("gd.gov.office"), "--reason", "keyCompromise", "--home", "ca"))
    refused(site.run("verify", "notice.signed.xml", *site.trust_options()), "证书不可信", contains="revoked")
    # the old CRL does not know yet: that is why verifiers fetch the current one
    ok(site.run("verify", "notice.signed.xml", "--root", "ca/root.crt", "--unsafe-no-revocation-check"))
