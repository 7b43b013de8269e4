"""Every constraint of ``gwexchange.envelope.model``: valid documents build, each invalid one raises a
``DocumentError`` whose ``element`` is the Chinese name of the element at fault."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest

from gwexchange.envelope.model import (
    MAX_TEXT,
    Attachment,
    Classification,
    Department,
    DocKind,
    DocNumber,
    Document,
    Urgency,
    check_department_code,
    check_lines,
    check_text,
    heading_level,
)
from gwexchange.errors import DocumentError, GwxError, InputError

SHA = "0" * 63 + "1"
CZT = Department("gd.gov.czt", "广东省财政厅")
GXT = Department("gd.gov.gxt", "广东省工业和信息化厅")
OFFICE = Department("gd.gov.office", "广东省人民政府办公厅")


def attachment(file_name: str = "a.pdf", **overrides: object) -> Attachment:
    fields: dict[str, object] = {
        "title": "预算明细表",
        "file_name": file_name,
        "media_type": "application/pdf",
        "size": 10,
        "sha256": SHA,
    }
    fields.update(overrides)
    return Attachment(**fields)  # type: ignore[arg-type]


def raises_on(element: str) -> pytest.RaisesExc[DocumentError]:
    """``pytest.raises(DocumentError)`` that also checks the error names ``element``."""
    return pytest.raises(DocumentError, check=lambda e: e.element == element)


# --- the error itself ----------------------------------------------------------------------------------------


def test_document_error_carries_element_and_problem() -> None:
    e = DocumentError("份号", "应为6位阿拉伯数字")
    assert e.element == "份号"
    assert e.problem == "应为6位阿拉伯数字"
    assert str(e) == "份号：应为6位阿拉伯数字"
    assert isinstance(e, InputError)
    assert isinstance(e, GwxError)


# --- valid documents -----------------------------------------------------------------------------------------


def test_minimal_document_builds(document_builder) -> None:
    doc = document_builder()
    assert doc.kind is DocKind.NOTICE
    assert doc.recipients == (CZT,)
    assert not doc.is_joint
    assert doc.copy_number is None
    assert doc.signers == ()


def test_full_document_builds(document_builder) -> None:
    doc = document_builder(
        kind=DocKind.REQUEST,
        classification=Classification.TOP_SECRET,
        copy_number="000001",
        secrecy_period="长期",
        urgency=Urgency.EXTRA_URGENT,
        issuers=(CZT, GXT),
        signers=("李明", "王芳"),
        signature_names=("广东省财政厅", "广东省工业和信息化厅"),
        main_recipients=(OFFICE,),
        main_recipients_line="省人民政府办公厅",
        attachment_note=("预算明细表", "问题清单"),
        attachments=(attachment("a.pdf"), attachment("b.pdf")),
        note="此件不公开。",
        copy_recipients=(Department("gz.gov.office"),),
        printer="广东省财政厅办公室",
        print_date=date(2026, 11, 20),
    )
    assert doc.is_joint
    assert doc.recipients == (OFFICE, Department("gz.gov.office"))
    assert doc.classification.is_classified


def test_document_is_immutable(document_builder) -> None:
    doc = document_builder()
    with pytest.raises(dataclasses.FrozenInstanceError):
        doc.title = "另一个标题"  # type: ignore[misc]


def test_replace_rechecks(document_builder) -> None:
    doc = document_builder()
    with raises_on("份号"):
        dataclasses.replace(doc, copy_number="1")


def test_copy_recipients_alone_are_enough(document_builder) -> None:
    doc = document_builder(main_recipients=(), copy_recipients=(CZT,))
    assert doc.recipients == (CZT,)


def test_no_recipients_at_all(document_builder) -> None:
    with raises_on("主送机关"):
        document_builder(main_recipients=(), copy_recipients=())


# --- enumerations --------------------------------------------------------------------------------------------


def test_classification_order_and_is_classified() -> None:
    assert [c.value for c in Classification] == ["公开", "内部", "秘密", "机密", "绝密"]
    assert [c.rank for c in Classification] == [0, 1, 2, 3, 4]
    assert [c.is_classified for c in Classification] == [False, False, True, True, True]


def test_fifteen_kinds_and_upward_ones() -> None:
    assert len(DocKind) == 15
    assert {k for k in DocKind if k.is_upward} == {DocKind.REQUEST, DocKind.REPORT}


@pytest.mark.parametrize(
    ("field", "value", "element"),
    [
        ("kind", "通知书", "文种"),
        ("kind", "通知", "文种"),  # a plain string, not the enum
        ("classification", "机要", "密级"),
        ("classification", "公开", "密级"),
        ("classification", None, "密级"),
        ("urgency", "急件", "紧急程度"),
        ("urgency", "特急", "紧急程度"),
    ],
)
def test_enum_elements_must_be_enum_members(document_builder, field: str, value: object, element: str) -> None:
    with raises_on(element) as info:
        document_builder(**{field: value})
    assert "不是有效值" in info.value.problem


def test_enum_error_lists_allowed_values(document_builder) -> None:
    with raises_on("密级") as info:
        document_builder(classification="机要")
    for c in Classification:
        assert c.value in info.value.problem


@pytest.mark.parametrize("urgency", [None, Urgency.URGENT, Urgency.EXTRA_URGENT])
def test_urgency_optional(document_builder, urgency: Urgency | None) -> None:
    assert document_builder(urgency=urgency).urgency is urgency


# --- 份号 ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("copy_number", ["000123", "000000", "999999", "123456"])
def test_copy_number_six_digits(document_builder, copy_number: str) -> None:
    assert document_builder(copy_number=copy_number).copy_number == copy_number


@pytest.mark.parametrize(
    "copy_number", ["12345", "1234567", "", "00012a", "０００１２３", "000 12", " 000123", "000123\n", "١٢٣٤٥٦"]
)
def test_copy_number_refused(document_builder, copy_number: str) -> None:
    with raises_on("份号"):
        document_builder(copy_number=copy_number)


@pytest.mark.parametrize("level", [Classification.SECRET, Classification.CONFIDENTIAL, Classification.TOP_SECRET])
def test_classified_document_requires_copy_number(document_builder, level: Classification) -> None:
    with raises_on("份号") as info:
        document_builder(classification=level)
    assert level.value in info.value.problem
    assert document_builder(classification=level, copy_number="000007").classification is level


@pytest.mark.parametrize("level", [Classification.PUBLIC, Classification.INTERNAL])
def test_unclassified_document_may_omit_copy_number(document_builder, level: Classification) -> None:
    assert document_builder(classification=level).copy_number is None


# --- 保密期限 ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("period", ["1年", "6个月", "长期", "30年", "999年", "12个月"])
def test_secrecy_period_good_forms(document_builder, period: str) -> None:
    doc = document_builder(classification=Classification.SECRET, copy_number="000007", secrecy_period=period)
    assert doc.secrecy_period == period


@pytest.mark.parametrize("level", [Classification.PUBLIC, Classification.INTERNAL])
def test_secrecy_period_only_for_secret_and_above(document_builder, level: Classification) -> None:
    with raises_on("保密期限") as info:
        document_builder(classification=level, copy_number="000007", secrecy_period="1年")
    assert level.value in info.value.problem


@pytest.mark.parametrize(
    "period", ["0年", "1000年", "一年", "1", "1月", "1天", "01年", "永久", "长期 ", " 1年", "1年6个月", ""]
)
def test_secrecy_period_bad_forms(document_builder, period: str) -> None:
    with raises_on("保密期限"):
        document_builder(classification=Classification.CONFIDENTIAL, copy_number="000007", secrecy_period=period)


# --- 发文字号 ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code", "year", "serial"),
    [
        ("粤办发〔2026〕12号", "粤办发", 2026, 12),
        ("国办函〔2025〕1号", "国办函", 2025, 1),
        ("粤财工〔2026〕9号", "粤财工", 2026, 9),
        ("粤府〔2001〕75号", "粤府", 2001, 75),
        ("粤工信函〔2026〕1305号", "粤工信函", 2026, 1305),
        ("粤办发〔2026〕10号", "粤办发", 2026, 10),
    ],
)
def test_doc_number_good_forms(text: str, code: str, year: int, serial: int) -> None:
    number = DocNumber(text)
    assert (number.text, number.agency_code, number.year, number.serial) == (text, code, year, serial)


def test_doc_number_with_di() -> None:
    with raises_on("发文字号") as info:
        DocNumber("粤办发〔2026〕第12号")
    assert "第" in info.value.problem


def test_doc_number_with_leading_zero() -> None:
    with raises_on("发文字号") as info:
        DocNumber("粤办发〔2026〕012号")
    assert "前导0" in info.value.problem


def test_doc_number_serial_zero_is_refused() -> None:
    with raises_on("发文字号"):
        DocNumber("粤办发〔2026〕0号")


@pytest.mark.parametrize(
    "text",
    ["粤办发[2026]12号", "粤办发（2026）12号", "粤办发(2026)12号", "粤办发［2026］12号", "粤办发2026年12号"],
)
def test_doc_number_without_hexagonal_brackets(text: str) -> None:
    with raises_on("发文字号") as info:
        DocNumber(text)
    assert "〔〕" in info.value.problem


@pytest.mark.parametrize(
    "text",
    [
        "粤办发〔2026〕12",  # no 号
        "〔2026〕12号",  # no 机关代字
        "粤办发〔26〕12号",  # two-digit year
        "粤办发〔20260〕12号",
        "粤办发〔2026〕号",  # no serial
        "粤 办发〔2026〕12号",  # blank inside
        "粤办发〔2026〕12号附",
        "粤办发〔2026〕〔2026〕12号",
        "粤办（发）〔2026〕12号",
    ],
)
def test_doc_number_other_bad_forms(text: str) -> None:
    with raises_on("发文字号"):
        DocNumber(text)


@pytest.mark.parametrize("text", ["", " 粤办发〔2026〕12号", "粤办发〔2026〕12号\n", "粤办发\t〔2026〕12号"])
def test_doc_number_text_checks(text: str) -> None:
    with raises_on("发文字号"):
        DocNumber(text)


def test_doc_number_length_limit() -> None:
    with raises_on("发文字号"):
        DocNumber("粤" * 60 + "〔2026〕12号")


def test_document_needs_a_doc_number_object(document_builder) -> None:
    with raises_on("发文字号"):
        document_builder(doc_number="粤办发〔2026〕12号")


# --- 签发人 --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [DocKind.REQUEST, DocKind.REPORT])
def test_upward_document_requires_signer(document_builder, kind: DocKind) -> None:
    with raises_on("签发人") as info:
        document_builder(kind=kind)
    assert kind.value in info.value.problem
    assert document_builder(kind=kind, signers=("李明",)).signers == ("李明",)


@pytest.mark.parametrize("kind", [k for k in DocKind if not k.is_upward])
def test_other_kinds_need_no_signer(document_builder, kind: DocKind) -> None:
    assert document_builder(kind=kind).signers == ()


@pytest.mark.parametrize("name", ["", " 李明", "李明\n", "李\x00明", "李" * 51])
def test_signer_text(document_builder, name: str) -> None:
    with raises_on("签发人"):
        document_builder(kind=DocKind.REQUEST, signers=(name,))


# --- 发文机关 and 发文机关署名 -------------------------------------------------------------------------------


def test_at_least_one_issuer(document_builder) -> None:
    with raises_on("发文机关"):
        document_builder(issuers=(), signature_names=())


def test_duplicate_issuer(document_builder) -> None:
    with raises_on("发文机关") as info:
        document_builder(issuers=(CZT, Department("gd.gov.czt")), signature_names=("甲", "乙"))
    assert "gd.gov.czt" in info.value.problem


@pytest.mark.parametrize(
    ("issuers", "names"),
    [
        ((OFFICE,), ()),
        ((OFFICE,), ("广东省人民政府办公厅", "广东省财政厅")),
        ((CZT, GXT), ("广东省财政厅",)),
        ((CZT, GXT), ("广东省财政厅", "广东省工业和信息化厅", "广东省人民政府办公厅")),
    ],
)
def test_signature_names_count_equals_issuers(document_builder, issuers, names) -> None:
    with raises_on("发文机关署名") as info:
        document_builder(issuers=issuers, signature_names=names)
    assert str(len(issuers)) in info.value.problem


def test_joint_document(document_builder) -> None:
    doc = document_builder(issuers=(CZT, GXT), signature_names=("广东省财政厅", "广东省工业和信息化厅"))
    assert doc.is_joint
    assert [d.code for d in doc.issuers] == ["gd.gov.czt", "gd.gov.gxt"]


@pytest.mark.parametrize("name", ["", " 广东省财政厅", "广东省\n财政厅"])
def test_signature_name_text(document_builder, name: str) -> None:
    with raises_on("发文机关署名"):
        document_builder(signature_names=(name,))


@pytest.mark.parametrize("mark", ["", "广东省人民政府办公厅文件 ", "广东省\r人民政府", "文" * 201])
def test_issuer_mark_text(document_builder, mark: str) -> None:
    with raises_on("发文机关标志"):
        document_builder(issuer_mark=mark)


# --- 机关 ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["gd.gov.office", "gd-hub.gov", "a.b", "gz2.gov.czj", "x" * 30 + "." + "y" * 33])
def test_department_code_good(code: str) -> None:
    assert Department(code).code == code
    assert Department(code).label == code


@pytest.mark.parametrize(
    "code",
    [
        "",
        "gd",
        "GD.gov.office",
        "gd..gov",
        ".gd.gov",
        "gd.gov.",
        "-gd.gov",
        "gd.-gov",
        "gd gov.x",
        "广东.gov",
        "gd_gov.x",
        "x" * 31 + "." + "y" * 33,
    ],
)
def test_department_code_bad(code: str) -> None:
    with raises_on("机关"):
        Department(code)


def test_check_department_code_uses_given_element() -> None:
    with raises_on("发文机关"):
        check_department_code("发文机关", "Bad.Code")


def test_department_label_prefers_name() -> None:
    assert Department("gd.gov.czt", "广东省财政厅").label == "广东省财政厅"


@pytest.mark.parametrize("name", ["", " 广东省财政厅", "广东省财政厅\n", "厅" * 201])
def test_department_name_text(name: str) -> None:
    with raises_on("机关名称"):
        Department("gd.gov.czt", name)


# --- 主送机关 and 抄送机关 -----------------------------------------------------------------------------------


def test_duplicate_main_recipient(document_builder) -> None:
    with raises_on("主送机关"):
        document_builder(main_recipients=(CZT, Department("gd.gov.czt")))


def test_recipient_both_main_and_copy(document_builder) -> None:
    with raises_on("主送机关") as info:
        document_builder(main_recipients=(CZT,), copy_recipients=(GXT, CZT))
    assert "gd.gov.czt" in info.value.problem


def test_duplicate_copy_recipient(document_builder) -> None:
    with raises_on("主送机关"):
        document_builder(copy_recipients=(GXT, GXT))


@pytest.mark.parametrize("line", ["", " 各地级以上市人民政府", "各地级以上市人民政府\n各省直单位", "省" * 1001])
def test_main_recipients_line_text(document_builder, line: str) -> None:
    with raises_on("主送机关"):
        document_builder(main_recipients_line=line)


def test_main_recipients_line_kept(document_builder) -> None:
    assert document_builder(main_recipients_line="各地级以上市人民政府").main_recipients_line == "各地级以上市人民政府"


# --- text elements -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "element"),
    [("title", "标题"), ("note", "附注"), ("issuer_mark", "发文机关标志"), ("printer", "印发机关")],
)
@pytest.mark.parametrize(
    "bad",
    [
        "",
        " ",
        " 前有空格",
        "后有空格 ",
        "全角空格\u3000",
        "\t制表符",
        "换\n行",
        "回\r车",
        "空\x00字符",
        "控\x1b制",
        "删\x7f除",
        "代理\ud800对",
        "非字符\ufffe",
        "非字符\uffff",
    ],
)
def test_single_line_text_elements(document_builder, field: str, element: str, bad: str) -> None:
    extra: dict[str, object] = {"print_date": date(2026, 11, 21)} if field == "printer" else {}
    with raises_on(element):
        document_builder(**{field: bad}, **extra)


def test_text_error_messages() -> None:
    with raises_on("标题") as info:
        check_text("标题", "")
    assert info.value.problem == "不能为空"
    with raises_on("标题") as info:
        check_text("标题", "   ")
    assert info.value.problem == "不能为空"
    with raises_on("标题") as info:
        check_text("标题", " 标题")
    assert "空白" in info.value.problem
    with raises_on("标题") as info:
        check_text("标题", "标\n题")
    assert "U+000A" in info.value.problem
    with raises_on("标题") as info:
        check_text("标题", "标题", max_length=1)
    assert "超过上限1" in info.value.problem
    with raises_on("标题"):
        check_text("标题", None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "good",
    [
        "标题",
        "a",
        "《广东省电子政务建设方案》",
        "中间 有 空格",
        "中间\u3000全角空格",
        "emoji😀",
        "\u00e9\u0301",
        "x" * MAX_TEXT,
    ],
)
def test_check_text_accepts(good: str) -> None:
    assert check_text("正文", good) == good


def test_text_length_limits(document_builder) -> None:
    assert document_builder(title="题" * 500).title == "题" * 500
    with raises_on("标题"):
        document_builder(title="题" * 501)
    assert document_builder(note="注" * 1000).note == "注" * 1000
    with raises_on("附注"):
        document_builder(note="注" * 1001)


# --- 正文 ----------------------------------------------------------------------------------------------------


def test_body_must_not_be_empty(document_builder) -> None:
    with raises_on("正文"):
        document_builder(body=())


@pytest.mark.parametrize(
    "line", ["", " 段落", "段落 ", "段\n落", "段\r\n落", "段\x0b落", "段\ud800落", "段" * (MAX_TEXT + 1)]
)
def test_body_paragraph_checks(document_builder, line: str) -> None:
    with raises_on("正文"):
        document_builder(body=("第一段。", line, "第三段。"))


def test_body_forbidden_character_reported_with_code_point(document_builder) -> None:
    with raises_on("正文") as info:
        document_builder(body=("第一段。", "第二\x07段。"))
    assert "U+0007" in info.value.problem


def test_body_long_paragraphs(document_builder) -> None:
    body = ("段" * MAX_TEXT,) * 3
    assert document_builder(body=body).body == body


def test_check_lines_direct() -> None:
    check_lines("正文", ("一、总体要求", "（一）目标"))
    with raises_on("附件说明"):
        check_lines("附件说明", ())
    with raises_on("附件说明"):
        check_lines("附件说明", ("好", 3))  # type: ignore[arg-type]


# --- heading levels ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("一、总体要求", 1),
        ("十二、其他", 1),
        ("二十三、附则", 1),
        ("（一）总体目标", 2),
        ("（十一）其他", 2),
        ("1.评价范围", 3),
        ("1. 评价范围", 3),
        ("12.其他", 3),
        ("1．全角点", 3),
        ("1、 以需求导向", 3),
        ("（1）具体要求", 4),
        ("（12）具体要求", 4),
        ("1.5亿元用于建设", 0),
        ("10.5%的增长", 0),
        ("2024年以来立项的项目", 0),
        ("为提高政务信息化建设资金使用效益", 0),
        ("一是加强领导", 0),
        ("(一)半角括号", 0),
        ("(1)半角括号", 0),
        ("第一、", 0),
        ("一 、", 0),
        ("（一", 0),
        ("", 0),
    ],
)
def test_heading_level(text: str, level: int) -> None:
    assert heading_level(text) == level


def test_heading_levels_in_examples(examples) -> None:
    levels = [heading_level(p) for p in examples["joint-notice"].body]
    assert levels == [0, 1, 0, 1, 2, 2, 1, 0]


# --- 附件 and 附件说明 ---------------------------------------------------------------------------------------


def test_attachment_good() -> None:
    a = attachment("预算明细表.xlsx", media_type="application/vnd.ms-excel", size=0)
    assert a.size == 0


@pytest.mark.parametrize(
    ("overrides", "element"),
    [
        ({"title": ""}, "附件名称"),
        ({"title": " 明细表"}, "附件名称"),
        ({"title": "明\n细表"}, "附件名称"),
        ({"file_name": ""}, "附件文件名"),
        ({"file_name": "dir/a.pdf"}, "附件文件名"),
        ({"file_name": "dir\\a.pdf"}, "附件文件名"),
        ({"file_name": "c:a.pdf"}, "附件文件名"),
        ({"file_name": "."}, "附件文件名"),
        ({"file_name": ".."}, "附件文件名"),
        ({"file_name": "a\x00.pdf"}, "附件文件名"),
        ({"file_name": "a" * 256}, "附件文件名"),
        ({"media_type": "pdf"}, "附件媒体类型"),
        ({"media_type": "Application/PDF"}, "附件媒体类型"),
        ({"media_type": "application/pdf; charset=x"}, "附件媒体类型"),
        ({"media_type": ""}, "附件媒体类型"),
        ({"size": -1}, "附件大小"),
        ({"size": True}, "附件大小"),
        ({"size": 1.5}, "附件大小"),
        ({"size": "10"}, "附件大小"),
        ({"sha256": "0" * 63}, "附件摘要"),
        ({"sha256": "0" * 65}, "附件摘要"),
        ({"sha256": "A" * 64}, "附件摘要"),
        ({"sha256": "g" * 64}, "附件摘要"),
    ],
)
def test_attachment_bad(overrides: dict[str, object], element: str) -> None:
    with raises_on(element):
        attachment(**overrides)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("报告\u202efdp.exe", "U+202E"),  # shows as 报告exe.pdf
        ("报告\u2067.pdf", "U+2067"),
        ("a\u200b.pdf", "U+200B"),  # zero width
        ("a\x85.pdf", "U+0085"),  # C1 control
        ("a\x7f.pdf", "不允许的字符 U+007F"),
        ("a\u2028.pdf", "U+2028"),
        ("a\U000e0001.pdf", "U+E0001"),  # a tag character
        ("CON", "设备名"),
        ("nul.txt", "设备名"),
        ("COM1.pdf", "设备名"),
        ("LPT9", "设备名"),
        ("-rf", "开头"),
        (".bashrc", "开头"),
        ("报告.", "结尾"),
        ("报告.pdf.", "结尾"),
        ("a?.pdf", "“?”"),
        ('a".pdf', '“"”'),
        ("a|b.pdf", "“|”"),
        ("a<b>.pdf", "“<”"),
        ("a*.pdf", "“*”"),
        ("表" * 67 + ".pdf", "超过 200 字节"),  # 205 bytes of UTF-8, 71 characters
    ],
)
def test_attachment_file_names_that_would_deceive_or_harm_are_refused(name: str, reason: str) -> None:
    with raises_on("附件文件名") as info:
        attachment(name)
    assert reason in info.value.problem


@pytest.mark.parametrize(
    "name",
    [
        "预算明细表.xlsx",
        "附件 1.docx",
        "2026年工作要点（草案）.ofd",
        "CONSOLE.txt",
        "a-b.c.pdf",
        "\ue000.pdf",  # private use: rare characters
        "表" * 66,  # 198 bytes
    ],
)
def test_attachment_file_names_a_clerk_uses_are_accepted(name: str) -> None:
    assert attachment(name).file_name == name


def test_attachments_need_matching_note(document_builder) -> None:
    with raises_on("附件说明") as info:
        document_builder(attachment_note=("预算明细表",), attachments=(attachment("a.pdf"), attachment("b.pdf")))
    assert "1" in info.value.problem
    assert "2" in info.value.problem
    with raises_on("附件说明"):
        document_builder(attachments=(attachment("a.pdf"),))


def test_note_without_electronic_attachments_is_fine(document_builder) -> None:
    doc = document_builder(attachment_note=("预算明细表", "问题清单"))
    assert doc.attachments == ()


def test_duplicate_attachment_file_names(document_builder) -> None:
    with raises_on("附件") as info:
        document_builder(attachment_note=("甲", "乙"), attachments=(attachment("a.pdf"), attachment("a.pdf")))
    assert "a.pdf" in info.value.problem


@pytest.mark.parametrize("item", ["", " 预算明细表", "预算\n明细表", "表" * 501])
def test_attachment_note_item_text(document_builder, item: str) -> None:
    with raises_on("附件说明"):
        document_builder(attachment_note=("预算明细表", item))


# --- 成文日期, 印发机关 and 印发日期 -------------------------------------------------------------------------


def test_date_must_be_a_date(document_builder) -> None:
    with raises_on("成文日期"):
        document_builder(date="2026-11-20")


def test_printer_and_print_date_together(document_builder) -> None:
    doc = document_builder(printer="广东省人民政府办公厅秘书处", print_date=date(2026, 11, 21))
    assert doc.print_date == date(2026, 11, 21)
    with raises_on("印发机关"):
        document_builder(printer="广东省人民政府办公厅秘书处")
    with raises_on("印发机关"):
        document_builder(print_date=date(2026, 11, 21))


def test_print_date_not_before_date(document_builder) -> None:
    same_day = document_builder(date=date(2026, 11, 20), printer="秘书处", print_date=date(2026, 11, 20))
    assert same_day.print_date == same_day.date
    with raises_on("印发日期") as info:
        document_builder(date=date(2026, 11, 20), printer="秘书处", print_date=date(2026, 11, 19))
    assert "2026-11-19" in info.value.problem


# --- the examples --------------------------------------------------------------------------------------------


def test_examples_are_valid_documents(examples) -> None:
    for doc in examples.values():
        assert isinstance(doc, Document)
        # rebuilding from the same elements passes every check again
        assert dataclasses.replace(doc) == doc
