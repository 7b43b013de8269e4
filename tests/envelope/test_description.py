"""Clerks' descriptions (TOML + body file) → ``Document``: the four examples, and every way a description fails."""

from __future__ import annotations

import hashlib
import shutil
from datetime import date
from pathlib import Path

import pytest

from gwexchange.envelope.description import (
    KEYS,
    REQUIRED,
    load_description,
    load_description_file,
    read_departments,
    split_body,
)
from gwexchange.envelope.model import Classification, Department, DocKind, Urgency
from gwexchange.errors import ConfigError, DocumentError, InputError
from gwexchange.files import measure_file

MINIMAL_TOML = """\
kind = "通知"
classification = "公开"
issuer = "gd.gov.office"
issuer_mark = "广东省人民政府办公厅文件"
doc_number = "粤办发〔2026〕12号"
title = "广东省人民政府办公厅关于开展测试工作的通知"
to = ["gd.gov.czt"]
body = "body.txt"
signature_name = "广东省人民政府办公厅"
date = "2026-11-20"
"""
BODY = "省财政厅：\n\n一、总体要求\n\n请按要求开展测试。\n"


def raises_on(element: str) -> pytest.RaisesExc[DocumentError]:
    return pytest.raises(DocumentError, check=lambda e: e.element == element)


def in_memory(toml: str, files: dict[str, bytes] | None = None, departments: dict[str, str] | None = None):
    """``load_description`` with the body and attachments held in a dict."""
    store = {"body.txt": BODY.encode()} if files is None else files

    def read(name: str) -> bytes:
        return store[name]

    def measure(name: str) -> tuple[int, str]:
        data = store[name]
        return len(data), hashlib.sha256(data).hexdigest()

    return load_description(toml, read, measure, departments)


def with_line(key: str, value: str) -> str:
    """MINIMAL_TOML with ``key = value`` replaced, or added if the key is not there."""
    lines = [line for line in MINIMAL_TOML.splitlines() if not line.startswith(f"{key} =")]
    return "\n".join([*lines, f"{key} = {value}"]) + "\n"


def without(key: str) -> str:
    return "\n".join(line for line in MINIMAL_TOML.splitlines() if not line.startswith(f"{key} =")) + "\n"


@pytest.fixture
def workdir(tmp_path: Path, examples_dir: Path) -> Path:
    """A writable copy of ``examples/``."""
    target = tmp_path / "examples"
    shutil.copytree(examples_dir, target)
    for path in [target, *target.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return target


# --- the four examples ---------------------------------------------------------------------------------------


def test_every_example_loads(example_loader, example_name: str) -> None:
    doc = example_loader(example_name)
    assert doc.body
    assert doc.issuers
    assert all(d.name for d in doc.issuers), "names come from departments.toml"


def test_notice(examples) -> None:
    doc = examples["notice"]
    assert doc.kind is DocKind.NOTICE
    assert doc.copy_number == "000123"
    assert doc.classification is Classification.INTERNAL
    assert doc.secrecy_period is None
    assert doc.urgency is Urgency.URGENT
    assert doc.issuers == (Department("gd.gov.office", "广东省人民政府办公厅"),)
    assert doc.doc_number.text == "粤办发〔2026〕12号"
    assert [d.code for d in doc.main_recipients] == ["gd.gov.czt", "gd.gov.gxt", "gz.gov.office"]
    assert [d.code for d in doc.copy_recipients] == ["gz.gov.czj", "sz.gov.office"]
    assert doc.copy_recipients[0].name == "广州市财政局"
    assert doc.main_recipients_line is None  # the body's first line is a heading, not a salutation
    assert doc.body[0] == "北京电子政务方案"
    assert doc.note == "此件公开发布至各地级以上市人民政府。"
    assert (doc.printer, doc.print_date) == ("广东省人民政府办公厅秘书处", date(2026, 11, 21))
    assert doc.date == date(2026, 11, 20)
    assert doc.attachments == ()


def test_request(examples) -> None:
    doc = examples["request"]
    assert doc.kind is DocKind.REQUEST
    assert doc.signers == ("李明",)
    assert doc.classification is Classification.SECRET
    assert doc.secrecy_period == "1年"
    assert f"{doc.classification}★{doc.secrecy_period}" == "秘密★1年"
    assert doc.copy_number == "000007"
    assert doc.urgency is Urgency.EXTRA_URGENT
    assert doc.main_recipients_line == "省人民政府办公厅"
    assert doc.attachment_note == ("政务外网安全改造项目预算明细表", "安全检查问题清单")
    assert doc.attachments == ()
    assert doc.body[-1] == "妥否，请批示。"
    assert not any(p.startswith("附件") for p in doc.body)


def test_letter_attachments_are_measured(examples, examples_dir: Path) -> None:
    doc = examples["letter"]
    assert doc.kind is DocKind.LETTER
    assert doc.classification is Classification.PUBLIC
    assert doc.main_recipients_line == "省财政厅"
    assert len(doc.attachments) == 2
    expected = ["share-catalogue.csv", "contacts.txt"]
    assert [a.file_name for a in doc.attachments] == expected
    for a, name in zip(doc.attachments, expected, strict=True):
        data = (examples_dir / "attachments" / name).read_bytes()
        assert a.sha256 == hashlib.sha256(data).hexdigest()
        assert a.size == len(data)
    assert [a.media_type for a in doc.attachments] == ["text/csv", "text/plain"]
    # no 附件： block in the body: the note is made of the attachments' titles (file stems)
    assert doc.attachment_note == ("财政领域政务数据共享目录（样表）", "联系人及联系方式")
    assert [a.title for a in doc.attachments] == ["财政领域政务数据共享目录（样表）", "联系人及联系方式"]


def test_joint_notice(examples) -> None:
    doc = examples["joint-notice"]
    assert doc.is_joint
    assert len(doc.issuers) == 2
    assert [d.code for d in doc.issuers] == ["gd.gov.czt", "gd.gov.gxt"]
    assert doc.signature_names == ("广东省财政厅", "广东省工业和信息化厅")
    assert doc.main_recipients_line == "广州市、深圳市人民政府"
    assert doc.body[0].startswith("为提高政务信息化建设资金使用效益")


def test_salutation_becomes_main_recipients_line(examples) -> None:
    for name in ("request", "letter", "joint-notice"):
        doc = examples[name]
        assert doc.main_recipients_line is not None
        assert not doc.body[0].endswith(("：", ":")), name


def test_to_line_overrides_salutation() -> None:
    doc = in_memory(with_line("to_line", '"财政厅"'))
    assert doc.main_recipients_line == "财政厅"
    assert doc.body == ("一、总体要求", "请按要求开展测试。")


def test_departments_argument_names_departments() -> None:
    doc = in_memory(MINIMAL_TOML, departments={"gd.gov.office": "办公厅"})
    assert doc.issuers[0].name == "办公厅"
    assert doc.main_recipients[0].name is None


def test_explicit_departments_file(workdir: Path) -> None:
    other = workdir / "other.toml"
    other.write_text('[departments]\n"gd.gov.gxt" = "工信厅"\n', encoding="utf-8")
    doc = load_description_file(workdir / "letter.toml", other)
    assert doc.issuers[0].name == "工信厅"
    assert doc.main_recipients[0].name is None


def test_no_departments_file(workdir: Path) -> None:
    (workdir / "departments.toml").unlink()
    doc = load_description_file(workdir / "letter.toml")
    assert doc.issuers == (Department("gd.gov.gxt"),)


def test_attachment_titles_from_body_note(workdir: Path) -> None:
    body = workdir / "letter-body.txt"
    body.write_text(body.read_text(encoding="utf-8") + "附件：1. 政务数据共享目录\n2. 联系人名单\n", encoding="utf-8")
    doc = load_description_file(workdir / "letter.toml")
    assert doc.attachment_note == ("政务数据共享目录", "联系人名单")
    assert [a.title for a in doc.attachments] == ["政务数据共享目录", "联系人名单"]
    assert [a.file_name for a in doc.attachments] == ["share-catalogue.csv", "contacts.txt"]


def test_attachment_as_table() -> None:
    toml = with_line("attachments", '[{file = "x/data.bin", title = "数据", media_type = "application/zip"}]')
    doc = in_memory(toml, {"body.txt": BODY.encode(), "x/data.bin": b"\x00\x01"})
    (a,) = doc.attachments
    assert (a.title, a.file_name, a.media_type, a.size) == ("数据", "data.bin", "application/zip", 2)
    assert doc.attachment_note == ("数据",)


def test_single_values_or_lists() -> None:
    toml = with_line("issuer", '["gd.gov.office"]')
    assert in_memory(toml).issuers == in_memory(MINIMAL_TOML).issuers


def test_toml_dates_and_strings() -> None:
    assert in_memory(with_line("date", "2026-11-20")).date == date(2026, 11, 20)


# --- split_body ----------------------------------------------------------------------------------------------


def test_split_body() -> None:
    salutation, paragraphs, items = split_body("  各单位： \n\n  第一段。\n\n附件：1. 甲表\n      2. 乙表\n")
    assert salutation == "各单位"
    assert paragraphs == ["第一段。"]
    assert items == ("甲表", "乙表")


def test_split_body_salutation_rules() -> None:
    assert split_body("各单位：\n正文。")[0] == "各单位"
    assert split_body("各单位:\n正文。")[0] == "各单位"
    assert split_body("为此。特通知如下：\n正文。")[0] is None  # a sentence, not a salutation
    assert split_body("单" * 201 + "：\n正文。")[0] is None


def test_split_body_single_attachment_unnumbered() -> None:
    assert split_body("正文。\n附件：预算明细表")[2] == ("预算明细表",)


def test_split_body_multiple_attachments_must_be_numbered() -> None:
    with raises_on("附件说明"):
        split_body("正文。\n附件：1. 甲表\n乙表")


def test_split_body_needs_paragraphs() -> None:
    with raises_on("正文"):
        split_body("各单位：\n\n")
    with raises_on("正文"):
        split_body("附件：1. 甲表")


def test_note_count_must_match_attachments() -> None:
    files = {"body.txt": "正文。\n附件：1. 甲表\n2. 乙表\n3. 丙表\n".encode(), "a.txt": b"a", "b.txt": b"b"}
    with raises_on("附件说明") as info:
        in_memory(with_line("attachments", '["a.txt", "b.txt"]'), files)
    assert "3" in info.value.problem
    assert "2" in info.value.problem


# --- malformed descriptions ----------------------------------------------------------------------------------


def test_malformed_toml() -> None:
    with raises_on("描述文件") as info:
        in_memory(MINIMAL_TOML + 'title = "重复"\n')
    assert "TOML" in info.value.problem
    with raises_on("描述文件"):
        in_memory('kind = "通知\n')


def test_unknown_key() -> None:
    with raises_on("描述文件") as info:
        in_memory(MINIMAL_TOML + 'subject = "标题"\n')
    assert "subject" in info.value.problem
    assert "title" in info.value.problem  # the allowed keys are listed


@pytest.mark.parametrize("key", REQUIRED)
def test_missing_required_key(key: str) -> None:
    with raises_on(KEYS[key]) as info:
        in_memory(without(key))
    assert key in info.value.problem


@pytest.mark.parametrize(
    ("key", "value", "element"),
    [
        ("kind", '"通知书"', "文种"),
        ("classification", '"机要"', "密级"),
        ("urgency", '"紧急"', "紧急程度"),
        ("kind", "3", "文种"),
    ],
)
def test_bad_enum_value(key: str, value: str, element: str) -> None:
    with raises_on(element) as info:
        in_memory(with_line(key, value))
    assert "不是有效值" in info.value.problem


@pytest.mark.parametrize(
    ("key", "value", "element"),
    [
        ("title", "42", "标题"),
        ("issuer", "[42]", "发文机关"),
        ("to", '["gd.gov.czt", 1]', "主送机关"),
        ("cc", "[true]", "抄送机关"),
        ("signer", "[1]", "签发人"),
        ("signature_name", "[1]", "发文机关署名"),
        ("body", "1", "正文"),
        ("note", "1", "附注"),
        ("date", '"2026-13-01"', "成文日期"),
        ("date", '"二〇二六年十一月二十日"', "成文日期"),
        ("print_date", '"2026/11/21"', "印发日期"),
        ("copy_number", '"123"', "份号"),
        ("doc_number", '"粤办发〔2026〕第12号"', "发文字号"),
        ("issuer", '"GD.gov.office"', "机关"),
        ("attachments", "[1]", "附件"),
        ("attachments", '[{title = "无文件"}]', "附件"),
    ],
)
def test_bad_values_name_the_element(key: str, value: str, element: str) -> None:
    with raises_on(element):
        in_memory(with_line(key, value))


def test_model_rules_apply() -> None:
    with raises_on("签发人"):
        in_memory(with_line("kind", '"请示"'))
    with raises_on("份号"):
        in_memory(with_line("classification", '"秘密"'))
    with raises_on("印发机关"):
        in_memory(with_line("printer", '"秘书处"'))
    with raises_on("发文机关署名"):
        in_memory(with_line("issuer", '["gd.gov.office", "gd.gov.gxt"]'))


def test_non_utf8_body() -> None:
    with raises_on("正文") as info:
        in_memory(MINIMAL_TOML, {"body.txt": "各单位：\n正文。".encode("gb18030")})
    assert "UTF-8" in info.value.problem
    assert "body.txt" in info.value.problem


def test_utf8_bom_body_is_accepted() -> None:
    doc = in_memory(MINIMAL_TOML, {"body.txt": b"\xef\xbb\xbf" + BODY.encode()})
    assert doc.main_recipients_line == "省财政厅"


def test_body_with_control_character() -> None:
    with raises_on("正文"):
        in_memory(MINIMAL_TOML, {"body.txt": "正文\x07。".encode()})


# --- through the file system ---------------------------------------------------------------------------------


def test_missing_body_file(workdir: Path) -> None:
    (workdir / "letter-body.txt").unlink()
    with raises_on("描述文件") as info:
        load_description_file(workdir / "letter.toml")
    assert "letter-body.txt" in info.value.problem


def test_missing_attachment_file(workdir: Path) -> None:
    (workdir / "attachments" / "contacts.txt").unlink()
    with raises_on("描述文件") as info:
        load_description_file(workdir / "letter.toml")
    assert "contacts.txt" in info.value.problem


def test_non_utf8_body_file(workdir: Path) -> None:
    body = workdir / "letter-body.txt"
    body.write_bytes(body.read_text(encoding="utf-8").encode("gbk"))
    with raises_on("正文"):
        load_description_file(workdir / "letter.toml")


def test_missing_description_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_description_file(tmp_path / "nothing.toml")


def test_non_utf8_description_file(workdir: Path) -> None:
    path = workdir / "letter.toml"
    path.write_bytes(path.read_text(encoding="utf-8").encode("gbk"))
    with raises_on("描述文件"):
        load_description_file(path)


def test_malformed_description_file(workdir: Path) -> None:
    path = workdir / "letter.toml"
    path.write_text(path.read_text(encoding="utf-8") + "kind = \n", encoding="utf-8")
    with raises_on("描述文件"):
        load_description_file(path)


def test_oversized_body_file(workdir: Path) -> None:
    (workdir / "letter-body.txt").write_bytes(b"a" * (4 * 1024 * 1024 + 1))
    with raises_on("正文"):
        load_description_file(workdir / "letter.toml")


@pytest.mark.parametrize(
    "content", ["[departments\n", "departments = 1\n", '[departments]\n"gd.gov.czt" = 1\n', "[other]\n"]
)
def test_bad_departments_file(workdir: Path, content: str) -> None:
    (workdir / "departments.toml").write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError):
        load_description_file(workdir / "letter.toml")


def test_read_departments(examples_dir: Path) -> None:
    names = read_departments(examples_dir / "departments.toml")
    assert names["gd.gov.czt"] == "广东省财政厅"
    assert len(names) == 6


def test_measure_file(examples_dir: Path) -> None:
    path = examples_dir / "attachments" / "share-catalogue.csv"
    data = path.read_bytes()
    assert measure_file(path) == (len(data), hashlib.sha256(data).hexdigest())


def test_errors_are_input_errors(workdir: Path) -> None:
    """Whatever is wrong with a description, the caller gets an InputError it can show the clerk."""
    (workdir / "letter.toml").write_text("kind = 1\n", encoding="utf-8")
    with pytest.raises(InputError):
        load_description_file(workdir / "letter.toml")
