"""The XML form of a 公文: Document → XML → Document is the identity, every XML written is valid against
``gwexchange/schemas/gongwen.xsd`` for both xmlschema and libxml2's xmllint, and invalid XML names the element at
fault."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import date
from pathlib import Path

import pytest
import xmlschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from gwexchange import xmlsafe
from gwexchange.envelope.model import (
    Attachment,
    Classification,
    Department,
    DocKind,
    DocNumber,
    Document,
    Urgency,
    check_file_name,
)
from gwexchange.envelope.signing import sign_document, verify_document
from gwexchange.envelope.xmlform import NS, document_from_element, document_to_element, document_to_xml
from gwexchange.errors import DocumentError, XmlInputError

# --- helpers -------------------------------------------------------------------------------------------------


def read_back(xml: bytes) -> Document:
    return document_from_element(xmlsafe.parse(xml))


def raises_on(element: str) -> pytest.RaisesExc[DocumentError]:
    return pytest.raises(DocumentError, check=lambda e: e.element == element)


@pytest.fixture(scope="module")
def xsd(schema_file: Path) -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(schema_file))


@pytest.fixture(scope="module")
def xmllint() -> str:
    path = shutil.which("xmllint")
    assert path is not None, "xmllint (Debian libxml2-utils) is needed: ./dev.sh test installs it"
    return path


def assert_valid(xml: bytes, folder: Path, xsd: xmlschema.XMLSchema, xmllint: str, schema_file: Path) -> None:
    """Valid for xmlschema and for ``xmllint --noout --schema``."""
    path = folder / "doc.xml"
    path.write_bytes(xml)
    errors = [str(e) for e in xsd.iter_errors(str(path))]
    assert errors == []
    result = subprocess.run(
        [xmllint, "--noout", "--schema", str(schema_file), str(path)], capture_output=True, check=False
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")


# --- the examples --------------------------------------------------------------------------------------------


def test_round_trip_examples(examples, example_name: str) -> None:
    doc = examples[example_name]
    xml = document_to_xml(doc)
    assert read_back(xml) == doc


def test_examples_are_schema_valid(example_xml, example_name, tmp_path, xsd, xmllint, schema_file) -> None:
    assert_valid(example_xml[example_name], tmp_path, xsd, xmllint, schema_file)


def test_signed_examples_are_schema_valid(examples, pki, now, tmp_path, xsd, xmllint, schema_file) -> None:
    """A signed document (Signing + ds:Signature blocks) is still a valid gw:Document."""
    for name, doc in examples.items():
        xml = document_to_xml(doc)
        for issuer in doc.issuers:
            xml = sign_document(xml, pki.signer(issuer.code), at=now)
        assert_valid(xml, tmp_path, xsd, xmllint, schema_file)
        assert read_back(xml) == doc, name


def test_draft_form(example_xml) -> None:
    xml = example_xml["notice"]
    assert xml.startswith(b"<?xml version='1.0' encoding='UTF-8'?>\n")
    assert b'<gw:Document xmlns:gw="urn:gwexchange:document:1">' in xml.splitlines()[1]
    assert xml.endswith(b"</gw:Document>\n")
    root = etree.fromstring(xml)
    assert root.tag == f"{{{NS}}}Document"
    assert [etree.QName(c).localname for c in root] == [
        "Kind", "CopyNumber", "Classification", "Urgency", "Issuers", "IssuerMark", "DocNumber", "Title",
        "MainRecipients", "Body", "SignatureName", "Date", "Note", "CopyRecipients", "Printer", "PrintDate",
    ]  # fmt: skip


def test_request_form(example_xml) -> None:
    root = etree.fromstring(example_xml["request"])
    ns = {"gw": NS}
    assert root.findtext("gw:Signer", namespaces=ns) == "李明"
    classification = root.find("gw:Classification", ns)
    assert classification is not None
    assert (classification.text, classification.get("period")) == ("秘密", "1年")
    assert root.findtext("gw:CopyNumber", namespaces=ns) == "000007"
    assert root.find("gw:MainRecipients", ns).get("line") == "省人民政府办公厅"
    assert [i.text for i in root.iterfind("gw:AttachmentNote/gw:Item", ns)] == [
        "政务外网安全改造项目预算明细表",
        "安全检查问题清单",
    ]


def test_letter_form(example_xml, examples) -> None:
    root = etree.fromstring(example_xml["letter"])
    found = root.findall(f"{{{NS}}}Attachments/{{{NS}}}Attachment")
    assert [dict(a.attrib) for a in found] == [
        {"title": a.title, "file": a.file_name, "mediaType": a.media_type, "size": str(a.size), "sha256": a.sha256}
        for a in examples["letter"].attachments
    ]


def test_joint_form(example_xml) -> None:
    root = etree.fromstring(example_xml["joint-notice"])
    ns = {"gw": NS}
    assert [d.get("code") for d in root.iterfind("gw:Issuers/gw:Department", ns)] == ["gd.gov.czt", "gd.gov.gxt"]
    assert [s.text for s in root.iterfind("gw:SignatureName", ns)] == ["广东省财政厅", "广东省工业和信息化厅"]


def test_document_to_element_is_not_serialised(examples) -> None:
    root = document_to_element(examples["notice"])
    assert document_from_element(root) == examples["notice"]


def test_department_without_name(document_builder) -> None:
    doc = document_builder(main_recipients=(Department("gd.gov.czt"),), main_recipients_line="省财政厅")
    root = etree.fromstring(document_to_xml(doc))
    dept = root.find(f"{{{NS}}}MainRecipients/{{{NS}}}Department")
    assert dept is not None
    assert dept.text is None
    assert read_back(document_to_xml(doc)) == doc


def test_line_without_departments(document_builder) -> None:
    doc = document_builder(main_recipients=(), main_recipients_line="各有关单位", copy_recipients=(Department("a.b"),))
    assert read_back(document_to_xml(doc)) == doc


# --- invalid XML ---------------------------------------------------------------------------------------------


def replaced(xml: bytes, old: str, new: str) -> bytes:
    assert old.encode() in xml, old
    return xml.replace(old.encode(), new.encode(), 1)


@pytest.mark.parametrize(
    ("old", "new", "element"),
    [
        ("<gw:CopyNumber>000123</gw:CopyNumber>", "<gw:CopyNumber>12345</gw:CopyNumber>", "份号"),
        ("<gw:CopyNumber>000123</gw:CopyNumber>", "<gw:CopyNumber>0001234</gw:CopyNumber>", "份号"),
        ("<gw:Classification>内部</gw:Classification>", "<gw:Classification>机要</gw:Classification>", "密级"),
        ("<gw:Urgency>加急</gw:Urgency>", "<gw:Urgency>急</gw:Urgency>", "紧急程度"),
        ("<gw:Kind>通知</gw:Kind>", "<gw:Kind>通知书</gw:Kind>", "文种"),
        ("粤办发〔2026〕12号", "粤办发〔2026〕第12号", "发文字号"),
        ("粤办发〔2026〕12号", "粤办发〔2026〕012号", "发文字号"),
        ("粤办发〔2026〕12号", "粤办发[2026]12号", "发文字号"),
        ('code="gd.gov.office"', 'code="GD.gov.office"', "机关代码"),
        ("<gw:Date>2026-11-20</gw:Date>", "<gw:Date>2026-02-30</gw:Date>", "成文日期"),
        ("<gw:Date>2026-11-20</gw:Date>", "<gw:Date>2026-11-20Z</gw:Date>", "成文日期"),
        ("<gw:PrintDate>2026-11-21</gw:PrintDate>", "<gw:PrintDate>2026/11/21</gw:PrintDate>", "印发日期"),
        ("<gw:Title>广东省", "<gw:Title></gw:Title><gw:Title>广东省", "标题"),
        ("<gw:Note>此件公开发布至各地级以上市人民政府。</gw:Note>", "<gw:Note></gw:Note>", "附注"),
        ("<gw:Classification>内部", '<gw:Classification period="1年">内部', "保密期限"),
    ],
)
def test_invalid_notice_xml_names_element(example_xml, old: str, new: str, element: str) -> None:
    with raises_on(element):
        read_back(replaced(example_xml["notice"], old, new))


@pytest.mark.parametrize(
    ("old", "new", "element"),
    [
        ('period="1年"', 'period="一年"', "保密期限"),
        ("<gw:CopyNumber>000007</gw:CopyNumber>", "", "份号"),  # 秘密 without 份号: a model rule
        ("<gw:Signer>李明</gw:Signer>", "", "签发人"),  # 请示 without 签发人: a model rule
        ("<gw:Signer>李明</gw:Signer>", "<gw:Signer> 李明</gw:Signer>", "签发人"),
        ('line="省人民政府办公厅"', 'line="省人民政府办公厅&#10;"', "主送机关"),
        ("<gw:Item>安全检查问题清单</gw:Item>", "<gw:Item></gw:Item>", "附件说明"),
        (
            "<gw:SignatureName>广东省财政厅</gw:SignatureName>",
            "<gw:SignatureName>广东省财政厅</gw:SignatureName><gw:SignatureName>另一个</gw:SignatureName>",
            "发文机关署名",
        ),
        ("<gw:PrintDate>2026-11-18</gw:PrintDate>", "<gw:PrintDate>2026-11-17</gw:PrintDate>", "印发日期"),
    ],
)
def test_invalid_request_xml_names_element(example_xml, old: str, new: str, element: str) -> None:
    with raises_on(element):
        read_back(replaced(example_xml["request"], old, new))


def test_signature_names_must_match_issuers(example_xml) -> None:
    with raises_on("发文机关署名"):
        read_back(replaced(example_xml["joint-notice"], "<gw:SignatureName>广东省财政厅</gw:SignatureName>", ""))


def test_missing_required_element(example_xml) -> None:
    """The schema requires at least one 发文机关署名; the error says what was expected."""
    with pytest.raises(DocumentError, match="SignatureName"):
        read_back(replaced(example_xml["request"], "<gw:SignatureName>广东省财政厅</gw:SignatureName>", ""))


@pytest.mark.parametrize(
    ("old", "new", "element"),
    [
        ('size="', 'size="-', "附件"),
        ('mediaType="text/csv"', 'mediaType="CSV"', "附件"),
        ('file="contacts.txt"', 'file="../contacts.txt"', "附件文件名"),
        ('file="contacts.txt"', 'file="share-catalogue.csv"', "附件"),
    ],
)
def test_invalid_attachment_xml(example_xml, old: str, new: str, element: str) -> None:
    with raises_on(element):
        read_back(replaced(example_xml["letter"], old, new))


def test_invalid_sha256_attribute(example_xml, examples) -> None:
    digest = examples["letter"].attachments[0].sha256
    with raises_on("附件"):
        read_back(replaced(example_xml["letter"], digest, digest.upper()))


def test_text_with_surrounding_blanks_or_line_breaks(example_xml) -> None:
    xml = example_xml["notice"]
    with raises_on("标题"):
        read_back(replaced(xml, "<gw:Title>广东省", "<gw:Title> 广东省"))
    with raises_on("正文"):
        read_back(replaced(xml, "<gw:P>北京电子政务方案</gw:P>", "<gw:P>北京电子\n政务方案</gw:P>"))
    with raises_on("发文机关标志"):
        read_back(replaced(xml, "<gw:IssuerMark>广东省", "<gw:IssuerMark>\n广东省"))


def test_missing_and_misplaced_elements(example_xml) -> None:
    xml = example_xml["notice"]
    title = re.search(rb"\s*<gw:Title>.*?</gw:Title>", xml)
    assert title is not None
    with pytest.raises(DocumentError):
        read_back(xml.replace(title.group(), b""))
    kind = b"<gw:Kind>\xe9\x80\x9a\xe7\x9f\xa5</gw:Kind>"  # 通知
    with pytest.raises(DocumentError):
        read_back(xml.replace(kind, b"").replace(b"</gw:Urgency>", b"</gw:Urgency>" + kind))


def test_unknown_element_or_namespace(example_xml) -> None:
    xml = example_xml["notice"]
    with pytest.raises(DocumentError):
        read_back(replaced(xml, "<gw:Note>", "<gw:Remark>x</gw:Remark><gw:Note>"))
    with pytest.raises(DocumentError):
        read_back(xml.replace(b"urn:gwexchange:document:1", b"urn:gwexchange:document:2"))


def test_not_xml(example_xml) -> None:
    with pytest.raises(XmlInputError):
        xmlsafe.parse(example_xml["notice"][:-30])


def test_model_rejects_what_cannot_be_written(document_builder) -> None:
    """A Document is checked before it becomes XML; the schema is a second gate on the way out."""
    with raises_on("标题"):
        document_to_xml(document_builder(title="标\x01题"))


# --- property tests ------------------------------------------------------------------------------------------

# Characters XML 1.0 can carry, minus what the model refuses in one-line text: no C0 controls, DEL, surrogates,
# U+FFFE or U+FFFF.
XML_CHAR = st.characters(min_codepoint=0x20, exclude_categories=("Cs",), exclude_characters="\x7f\ufffe\uffff")


def line(max_size: int = 30) -> st.SearchStrategy[str]:
    """One line of arbitrary text with no surrounding blanks (Python's notion of blanks: str.strip)."""
    return st.text(XML_CHAR, min_size=1, max_size=max_size).map(str.strip).filter(bool)


DEPT_CODE = st.from_regex(r"[a-z0-9][a-z0-9-]{0,6}(\.[a-z0-9][a-z0-9-]{0,6}){1,3}", fullmatch=True)
DEPARTMENT = st.builds(Department, code=DEPT_CODE, name=st.none() | line(20))
# 机关代字: anything but brackets, blanks and 第 (the model refuses Unicode blanks, the schema ASCII ones).
AGENCY_CODE = st.text(XML_CHAR.filter(lambda c: c not in "〔〕[]［］()（）第"), min_size=1, max_size=10).filter(
    lambda s: re.search(r"\s", s) is None
)
DOC_NUMBER = st.builds(
    lambda code, year, serial: DocNumber(f"{code}〔{year:04d}〕{serial}号"),
    AGENCY_CODE,
    st.integers(1000, 9999),
    st.integers(1, 10**6),
)
DATES = st.dates()


def _is_file_name(text: str) -> bool:
    try:
        check_file_name("附件文件名", text)
    except DocumentError:
        return False
    return True


FILE_NAME = line(20).filter(_is_file_name)  # the name rules have tests of their own (test_model.py)
MEDIA_TYPE = st.from_regex(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,10}/[a-z0-9][a-z0-9!#$&^_.+-]{0,10}", fullmatch=True)


def unique_departments(min_size: int, max_size: int) -> st.SearchStrategy[list[Department]]:
    return st.lists(DEPARTMENT, min_size=min_size, max_size=max_size, unique_by=lambda d: d.code)


@st.composite
def documents(draw: st.DrawFn, issuers: st.SearchStrategy[list[Department]] | None = None) -> Document:
    kind = draw(st.sampled_from(DocKind))
    classification = draw(st.sampled_from(Classification))
    classified = classification.is_classified
    copy_number = draw(st.from_regex(r"[0-9]{6}", fullmatch=True) if classified else st.none())
    if not classified and draw(st.booleans()):
        copy_number = draw(st.from_regex(r"[0-9]{6}", fullmatch=True))
    period = draw(st.none() | st.from_regex(r"[1-9][0-9]{0,2}(年|个月)|长期", fullmatch=True)) if classified else None
    issuing = draw(issuers if issuers is not None else unique_departments(1, 3))
    recipients = draw(unique_departments(0, 4).filter(lambda r: not {d.code for d in r} & {d.code for d in issuing}))
    split = draw(st.integers(0, len(recipients)))
    main, copy = tuple(recipients[:split]), tuple(recipients[split:])
    if not main and not copy:
        copy = (Department("recipient.example"),)
    files = draw(st.lists(FILE_NAME, max_size=3, unique=True))
    attachments = tuple(
        Attachment(
            title=draw(line(20)),
            file_name=name,
            media_type=draw(MEDIA_TYPE),
            size=draw(st.integers(0, 2**40)),
            sha256=draw(st.from_regex(r"[0-9a-f]{64}", fullmatch=True)),
        )
        for name in files
    )
    note_items = (
        tuple(draw(line(20)) for _ in attachments) if attachments else tuple(draw(st.lists(line(20), max_size=2)))
    )
    written = draw(DATES)
    printed = draw(st.none() | st.dates(min_value=written, max_value=date(9999, 12, 31)))
    return Document(
        kind=kind,
        classification=classification,
        copy_number=copy_number,
        secrecy_period=period,
        urgency=draw(st.none() | st.sampled_from(Urgency)),
        issuers=tuple(issuing),
        issuer_mark=draw(line()),
        doc_number=draw(DOC_NUMBER),
        signers=tuple(draw(st.lists(line(10), min_size=1 if kind.is_upward else 0, max_size=2))),
        title=draw(line(60)),
        main_recipients=main,
        main_recipients_line=draw(st.none() | line()),
        body=tuple(draw(st.lists(line(80), min_size=1, max_size=5))),
        attachment_note=note_items,
        attachments=attachments,
        signature_names=tuple(draw(line(20)) for _ in issuing),
        date=written,
        note=draw(st.none() | line()),
        copy_recipients=copy,
        printer=draw(line(20)) if printed is not None else None,
        print_date=printed,
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents())
def test_property_xml_round_trip(doc: Document) -> None:
    xml = document_to_xml(doc)
    assert read_back(xml) == doc


@settings(max_examples=50, deadline=None)
@given(text=line(200))
def test_property_any_title_round_trips(document_builder, text: str) -> None:
    doc = document_builder(title=text, body=(text,), note=text, main_recipients_line=text)
    assert read_back(document_to_xml(doc)) == doc


OFFICE_ONLY = st.builds(lambda name: [Department("gd.gov.office", name)], st.none() | line(20))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents(issuers=OFFICE_ONLY))
def test_property_sign_verify_round_trip(pki, trust, now, doc: Document) -> None:
    signed = sign_document(document_to_xml(doc), pki.signer("gd.gov.office"), at=now)
    verified = verify_document(signed, trust, now=now)
    assert verified.document == doc
    assert [s.department for s in verified.signatures] == ["gd.gov.office"]
    assert verified.signatures[0].signer_name == "广东省人民政府办公厅"
    assert verified.signatures[0].signed_at == now
    assert verified.signed_bytes == signed
