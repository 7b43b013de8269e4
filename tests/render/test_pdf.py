"""GB/T 9704 PDFs that carry their own proof: layout, fonts, embedded signed XML, PAdES signature, verification.

The PDFs are checked with the tools an office or a court would use: poppler's pdftotext, pdffonts and pdfsig,
qpdf --check, and pypdf to take the embedded XML out again, independently of gwexchange's own reader.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pypdf import PdfReader

from gwexchange.crypto.certificates import RevocationReason
from gwexchange.envelope.model import Document
from gwexchange.envelope.signing import VerifiedDocument, sign_document, verify_document
from gwexchange.envelope.xmlform import document_to_xml
from gwexchange.errors import ConfigError, DocumentError, SignatureError, TrustError, VerificationError
from gwexchange.render.fonts import Face, FontSet, load_fonts
from gwexchange.render.pdf_layout import (
    BLOCK_H,
    BLOCK_W,
    CELL,
    LEFT,
    LINES_PER_PAGE,
    MARK_TOP,
    MM,
    PAGE_H,
    RED,
    SEAL_RADIUS,
    SIZE_2,
    SIZE_3,
    TOP,
    Page,
    RuleOp,
    SealOp,
    TextOp,
    layout_pages,
)
from gwexchange.render.pdf_paint import render_pdf
from gwexchange.render.pdf_proof import (
    SOURCE_FILE,
    VerifiedPdf,
    embed_proof,
    make_pdf,
    sign_pdf,
    verify_pdf,
)

EXAMPLE_NAMES = ("notice", "request", "letter", "joint-notice")


# --- fixtures ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fonts() -> FontSet:
    return load_fonts()


def sign_all(xml: bytes, pki: Any, now: datetime, document: Document) -> bytes:
    """Every issuing department signs in turn, a minute apart (``pki`` is conftest's ``Pki``)."""
    for i, issuer in enumerate(document.issuers):
        xml = sign_document(xml, pki.signer(issuer.code), at=now + timedelta(minutes=i))
    return xml


@pytest.fixture(scope="module")
def verified_examples(pki: Any, now: datetime, examples: dict[str, Document]) -> dict[str, VerifiedDocument]:
    result = {}
    for name, doc in examples.items():
        signed = sign_all(document_to_xml(doc), pki, now, doc)
        result[name] = verify_document(signed, pki.trust(), now=now + timedelta(hours=1))
    return result


@pytest.fixture(scope="module")
def attachment_files(examples_dir: Path, examples: dict[str, Document]) -> dict[str, bytes]:
    return {
        a.file_name: (examples_dir / "attachments" / a.file_name).read_bytes()
        for doc in examples.values()
        for a in doc.attachments
    }


def long_body() -> tuple[str, ...]:
    """Two hundred paragraphs with every heading level, digits, quotes and a run of Latin text too long to fit."""
    body = []
    numerals = "一二三四五六七八九十"
    for i in range(200):
        n = numerals[i % 10]
        kind = i % 6
        if kind == 0:
            body.append(f"{n}、第{i}部分的要求")
        elif kind == 1:
            body.append(f"（{n}）第{i}项工作。各地要按照“统一规划、分步实施”的原则推进政务信息化建设。")
        elif kind == 2:
            body.append(f"{i % 9 + 1}.第{i}条。" + "政府信息化建设要与政府职能转变相结合，提高办事效率和管理水平。" * 3)
        elif kind == 3:
            body.append(
                f"（{i % 9 + 1}）访问 https://www.gd.gov.cn/zwgk/{i:04d}/index-of-a-very-long-address.html 查看。"
            )
        else:
            body.append(f"段落{i}：" + "积极运用现代化科技手段，特别是先进的信息技术，加快政府管理信息化进程。" * 4)
    return tuple(body)


@pytest.fixture(scope="module")
def long_document(pki: Any, now: datetime, document_builder: Callable[..., Document]) -> VerifiedDocument:
    doc = document_builder(body=long_body(), title="广东省人民政府办公厅关于开展长篇公文分页排版测试工作的通知")
    signed = sign_all(document_to_xml(doc), pki, now, doc)
    return verify_document(signed, pki.trust(), now=now + timedelta(hours=1))


@pytest.fixture(scope="module")
def pdfs(
    verified_examples: dict[str, VerifiedDocument],
    long_document: VerifiedDocument,
    attachment_files: dict[str, bytes],
    pki: Any,
    now: datetime,
    fonts: FontSet,
) -> dict[str, bytes]:
    """The four samples and the long document as signed PDFs, rendered an hour after they were signed."""
    made = {}
    for name, verified in [*verified_examples.items(), ("long", long_document)]:
        signer = pki.signer(verified.document.issuers[0].code)
        files = {a.file_name: attachment_files[a.file_name] for a in verified.document.attachments}
        made[name] = make_pdf(verified, signer, fonts, at=now + timedelta(hours=1), attachments=files, chain=[pki.root])
    return made


ALL = (*EXAMPLE_NAMES, "long")


def run(*args: str | Path, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*map(str, args)], input=stdin, capture_output=True, text=stdin is None, check=False, timeout=120
    )


def pdf_file(tmp_path: Path, data: bytes, name: str = "doc.pdf") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def squeeze(text: str) -> str:
    """Text without any blank: the PDF lays CJK text out by position, and justified lines may gain spaces."""
    return re.sub(r"\s+", "", text)


# --- what poppler, qpdf and pypdf see ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_text_comes_out_in_order(
    name: str, pdfs: dict[str, bytes], tmp_path: Path, examples: dict[str, Document], long_document: VerifiedDocument
) -> None:
    doc = long_document.document if name == "long" else examples[name]
    done = run("pdftotext", "-enc", "UTF-8", pdf_file(tmp_path, pdfs[name]), "-")
    assert done.returncode == 0, done.stderr
    # A paragraph that runs over a page has the page number in the middle of it.
    text = squeeze(re.sub(r"— \d+ —", "", done.stdout))
    expected = [doc.doc_number.text, doc.title]
    if doc.main_recipients_line:
        expected.append(doc.main_recipients_line + "：")
    expected += list(doc.body)
    expected += (
        [f"附件：{'1.' if len(doc.attachment_note) > 1 else ''}{doc.attachment_note[0]}"] if doc.attachment_note else []
    )
    expected += list(doc.signature_names)
    expected.append(f"{doc.date.year}年{doc.date.month}月{doc.date.day}日")
    if doc.note:
        expected.append(f"（{doc.note}）")
    for i, a in enumerate(doc.attachments, 1):
        expected.append(f"附件{i if len(doc.attachments) > 1 else ''}")
        expected.append(f"SHA-256：{a.sha256}")
    if doc.copy_recipients:
        expected.append("抄送：" + "，".join(d.label for d in doc.copy_recipients) + "。")
    if doc.printer and doc.print_date:
        expected += [doc.printer, f"{doc.print_date.year}年{doc.print_date.month}月{doc.print_date.day}日印发"]
    position = 0
    for part in expected:
        found = text.find(squeeze(part), position)
        assert found >= 0, f"{part!r} not found (in order) after position {position}"
        position = found + len(squeeze(part))


@pytest.mark.parametrize("name", ALL)
def test_every_font_is_embedded(name: str, pdfs: dict[str, bytes], tmp_path: Path) -> None:
    done = run("pdffonts", pdf_file(tmp_path, pdfs[name]))
    assert done.returncode == 0, done.stderr
    rows = done.stdout.splitlines()[2:]
    assert rows, done.stdout
    for row in rows:
        # name, type, encoding, then emb sub uni: the columns before the object number
        emb, sub, uni = row.split()[-5:-2]
        assert (emb, sub, uni) == ("yes", "yes", "yes"), row
        assert "TrueType" in row, row
    families = {re.sub(r"^[A-Z]{6}\+|-\d+$", "", row.split()[0]) for row in rows}
    assert {"UMingCN", "WenQuanYiZenHei"} <= families, families
    if name in ("request", "joint-notice", "long"):
        assert "UKaiCN" in families, families  # （一） headings are in 楷体


@pytest.mark.parametrize("name", ALL)
def test_qpdf_check_passes(name: str, pdfs: dict[str, bytes], tmp_path: Path) -> None:
    done = run("qpdf", "--check", pdf_file(tmp_path, pdfs[name]))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No syntax or stream encoding errors found" in done.stdout


@pytest.mark.parametrize("name", ALL)
def test_pdfsig_reports_a_valid_signature_by_the_department(
    name: str, pdfs: dict[str, bytes], tmp_path: Path, examples: dict[str, Document], long_document: VerifiedDocument
) -> None:
    doc = long_document.document if name == "long" else examples[name]
    done = run("pdfsig", pdf_file(tmp_path, pdfs[name]))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("Signature #") == 1
    assert "Signature Validation: Signature is Valid." in done.stdout
    assert f"Signer Certificate Common Name: {doc.issuers[0].name}" in done.stdout
    assert f"UID={doc.issuers[0].code}" in done.stdout
    assert "Signature Type: ETSI.CAdES.detached" in done.stdout
    assert "Total document signed" in done.stdout


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_embedded_xml_is_the_signed_document(
    name: str, pdfs: dict[str, bytes], verified_examples: dict[str, VerifiedDocument], pki: Any, now: datetime
) -> None:
    reader = PdfReader(io.BytesIO(pdfs[name]))
    verified = verified_examples[name]
    embedded = reader.attachments
    assert embedded[SOURCE_FILE] == [verified.signed_bytes]
    # It verifies on its own, as any signed document does.
    again = verify_document(embedded[SOURCE_FILE][0], pki.trust(), now=now + timedelta(hours=2))
    assert again.document == verified.document
    # PDF/A-3 manner: listed in the catalog's /AF, with its relationship and media type.
    catalog = reader.trailer["/Root"]
    specs = [ref.get_object() for ref in catalog["/AF"]]
    source = [s for s in specs if s["/AFRelationship"] == "/Source"]
    assert len(source) == 1
    assert source[0]["/UF"] == f"{verified.document.doc_number.text}.signed.xml"
    assert source[0]["/EF"]["/F"].get_object()["/Subtype"] == "/application/xml"
    supplements = {s["/UF"] for s in specs if s["/AFRelationship"] == "/Supplement"}
    assert supplements == {a.file_name for a in verified.document.attachments}
    for a in verified.document.attachments:
        assert len(embedded[a.file_name][0]) == a.size


def test_pdf_metadata(pdfs: dict[str, bytes], verified_examples: dict[str, VerifiedDocument]) -> None:
    reader = PdfReader(io.BytesIO(pdfs["notice"]))
    doc = verified_examples["notice"].document
    assert reader.metadata is not None
    assert reader.metadata.title == doc.title
    assert reader.metadata.subject == doc.doc_number.text
    assert reader.metadata["/CreationDate"] == "D:20261120090000+00'00'"
    assert reader.trailer["/Root"]["/Lang"] == "zh-CN"
    page = reader.pages[0]
    assert (round(float(page.mediabox.width) / MM), round(float(page.mediabox.height) / MM)) == (210, 297)


# --- verification --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_verify_pdf(
    name: str, pdfs: dict[str, bytes], verified_examples: dict[str, VerifiedDocument], pki: Any, now: datetime
) -> None:
    result = verify_pdf(pdfs[name], pki.trust(), now=now + timedelta(hours=2))
    verified = verified_examples[name]
    assert isinstance(result, VerifiedPdf)
    assert result.document == verified.document
    assert result.verified_document.signed_bytes == verified.signed_bytes
    assert [s.department for s in result.verified_document.signatures] == [d.code for d in verified.document.issuers]
    assert len(result.pdf_signatures) == 1
    assert result.signer.department == verified.document.issuers[0].code
    assert result.signer.signed_at == now + timedelta(hours=1)
    assert result.signer.certificate == pki.cert(result.signer.department)
    assert [a.file_name for a in result.attachments] == [a.file_name for a in verified.document.attachments]
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.sha256 = "0"  # type: ignore[misc]


def test_changed_embedded_xml_fails(
    pdfs: dict[str, bytes], verified_examples: dict[str, VerifiedDocument], pki: Any, now: datetime
) -> None:
    pdf = pdfs["notice"]
    start = pdf.index(verified_examples["notice"].signed_bytes)
    i = pdf.index("印发《".encode(), start) + 3
    tampered = pdf[:i] + "废".encode() + pdf[i + 3 :]
    with pytest.raises(SignatureError, match="changed after signing"):
        verify_pdf(tampered, pki.trust(), now=now + timedelta(hours=2))


def test_changed_signed_bytes_fail(pdfs: dict[str, bytes], pki: Any, now: datetime) -> None:
    pdf = pdfs["request"]
    i = pdf.index(b"/Creator")
    tampered = pdf[:i] + pdf[i : i + 40].replace(b"gwexchange", b"gwexchangf") + pdf[i + 40 :]
    assert tampered != pdf
    with pytest.raises(SignatureError):
        verify_pdf(tampered, pki.trust(), now=now + timedelta(hours=2))
    page = pdf.index(b"\nstream", pdf.index(b"/Contents")) + 20
    flipped = pdf[:page] + bytes([pdf[page] ^ 0x20]) + pdf[page + 1 :]
    with pytest.raises(VerificationError):
        verify_pdf(flipped, pki.trust(), now=now + timedelta(hours=2))


def test_tampered_xml_in_a_properly_signed_pdf_fails(
    verified_examples: dict[str, VerifiedDocument], pki: Any, now: datetime, fonts: FontSet
) -> None:
    """Even the issuing department's own PDF signature cannot make a changed document verify."""
    verified = verified_examples["notice"]
    data = verified.signed_bytes
    i = data.index("印发《".encode()) + 3
    forged = dataclasses.replace(verified, signed_bytes=data[:i] + "废".encode() + data[i + 3 :])
    layout = render_pdf(verified.document, verified.signatures, fonts)
    at = now + timedelta(hours=1)
    pdf = sign_pdf(
        embed_proof(layout, forged, attachments={}, at=at), verified.document, pki.signer("gd.gov.office"), at=at
    )
    with pytest.raises(SignatureError):
        verify_pdf(pdf, pki.trust(), now=now + timedelta(hours=2))


def test_swapped_xml_after_signing_fails(
    pdfs: dict[str, bytes], verified_examples: dict[str, VerifiedDocument], pki: Any, now: datetime
) -> None:
    """An incremental update that puts another (itself validly signed) document in place of the embedded one."""
    writer = IncrementalPdfFileWriter(io.BytesIO(pdfs["notice"]))
    spec_ref = writer.root["/AF"].raw_get(0)
    spec = spec_ref.get_object()
    stream = generic.StreamObject(stream_data=verified_examples["request"].signed_bytes)
    spec["/EF"] = generic.DictionaryObject({generic.NameObject("/F"): writer.add_object(stream)})
    writer.mark_update(spec_ref)
    out = io.BytesIO()
    writer.write(out)
    with pytest.raises(SignatureError, match="does not cover the whole file"):
        verify_pdf(out.getvalue(), pki.trust(), now=now + timedelta(hours=2))


def test_pdf_signed_by_a_department_that_did_not_issue_it_fails(
    verified_examples: dict[str, VerifiedDocument], pki: Any, now: datetime, fonts: FontSet
) -> None:
    verified = verified_examples["notice"]
    at = now + timedelta(hours=1)
    with pytest.raises(ConfigError, match="issuing department"):
        make_pdf(verified, pki.signer("gd.gov.gxt"), fonts, at=at)
    # Forced through by naming another document as the one signed: the verifier still refuses it.
    embedded = embed_proof(render_pdf(verified.document, verified.signatures, fonts), verified, attachments={}, at=at)
    letter = verified_examples["letter"].document
    pdf = sign_pdf(embedded, letter, pki.signer("gd.gov.gxt"), at=at)
    with pytest.raises(SignatureError, match="not an issuing department"):
        verify_pdf(pdf, pki.trust(), now=now + timedelta(hours=2))


def test_pdf_signed_under_another_root_fails(
    verified_examples: dict[str, VerifiedDocument],
    pki: Any,
    make_pki: Callable[..., Any],
    now: datetime,
    fonts: FontSet,
) -> None:
    other = make_pki(rsa_department=False, node=False)
    verified = verified_examples["notice"]
    pdf = make_pdf(verified, other.signer("gd.gov.office"), fonts, at=now + timedelta(hours=1))
    with pytest.raises(TrustError, match="does not chain"):
        verify_pdf(pdf, pki.trust(), now=now + timedelta(hours=2))


def test_pdf_signed_after_revocation_fails(
    make_pki: Callable[..., Any], now: datetime, fonts: FontSet, examples: dict[str, Document]
) -> None:
    """Revoked as superseded between signing the document and signing the PDF: the document still verifies, the
    PDF signature does not."""
    own = make_pki(rsa_department=False, node=False)
    doc = examples["notice"]
    signed = sign_all(document_to_xml(doc), own, now, doc)
    own.authority.revoke(own.serial("gd.gov.office"), reason=RevocationReason.SUPERSEDED, now=now + timedelta(hours=1))
    verified = verify_document(signed, own.trust(), now=now + timedelta(hours=3))
    pdf = make_pdf(verified, own.signer("gd.gov.office"), fonts, at=now + timedelta(hours=2))
    with pytest.raises(TrustError, match="revoked"):
        verify_pdf(pdf, own.trust(), now=now + timedelta(hours=3))


def test_pdf_signature_from_the_future_fails(pdfs: dict[str, bytes], pki: Any, now: datetime) -> None:
    with pytest.raises(SignatureError, match="future"):
        verify_pdf(pdfs["notice"], pki.trust(), now=now)


def test_unsigned_or_proofless_pdfs_fail(
    verified_examples: dict[str, VerifiedDocument], pki: Any, now: datetime, fonts: FontSet
) -> None:
    verified = verified_examples["notice"]
    layout = render_pdf(verified.document, verified.signatures, fonts)
    later = now + timedelta(hours=2)
    with pytest.raises(SignatureError, match="not signed"):
        verify_pdf(layout, pki.trust(), now=later)
    signed_only = sign_pdf(layout, verified.document, pki.signer("gd.gov.office"), at=now + timedelta(hours=1))
    with pytest.raises(VerificationError, match="embed one signed document"):
        verify_pdf(signed_only, pki.trust(), now=later)
    with pytest.raises(VerificationError, match="not a PDF"):
        verify_pdf(b"<xml/>", pki.trust(), now=later)
    with pytest.raises(VerificationError):
        verify_pdf(layout[: len(layout) // 2], pki.trust(), now=later)


def test_a_changed_attachment_is_not_embedded(
    verified_examples: dict[str, VerifiedDocument],
    pki: Any,
    now: datetime,
    fonts: FontSet,
    attachment_files: dict[str, bytes],
) -> None:
    verified = verified_examples["letter"]
    files = {a.file_name: attachment_files[a.file_name] for a in verified.document.attachments}
    files["contacts.txt"] += b"\n"
    with pytest.raises(VerificationError, match=r"contacts\.txt"):
        make_pdf(verified, pki.signer("gd.gov.gxt"), fonts, at=now + timedelta(hours=1), attachments=files)


# --- the layout, measured ------------------------------------------------------------------------------------


def texts(page: Page, element: str | None = None) -> list[TextOp]:
    return [op for op in page.ops if isinstance(op, TextOp) and (element is None or op.element == element)]


def width(fonts: FontSet, op: TextOp) -> float:
    advances = [(fonts.font_for(op.face, c) or fonts.primary(op.face)).advance(c) * op.size for c in op.text]
    return (sum(advances) + op.char_space * (len(op.text) - 1)) * op.scale


@pytest.fixture(scope="module")
def layouts(
    verified_examples: dict[str, VerifiedDocument], long_document: VerifiedDocument, fonts: FontSet
) -> dict[str, tuple[Page, ...]]:
    items = [*verified_examples.items(), ("long", long_document)]
    return {name: layout_pages(v.document, v.signatures, fonts) for name, v in items}


def test_header_of_the_notice(layouts: dict[str, tuple[Page, ...]], fonts: FontSet) -> None:
    first = layouts["notice"][0]
    number, secrecy, urgency = texts(first, "份号"), texts(first, "密级和保密期限"), texts(first, "紧急程度")
    assert [op.text for op in number + secrecy + urgency] == ["000123", "内部", "加急"]
    assert all(op.x == LEFT for op in number + secrecy + urgency)
    assert number[0].y > secrecy[0].y > urgency[0].y
    assert (secrecy[0].face, urgency[0].face) == (Face.HEITI, Face.HEITI)
    (mark,) = texts(first, "发文机关标志")
    assert mark.color == RED and mark.face is Face.XIAOBIAOSONG
    assert mark.y + 0.88 * mark.size == pytest.approx(PAGE_H - TOP - MARK_TOP)
    assert mark.x >= LEFT - 0.01 and mark.x + width(fonts, mark) <= LEFT + BLOCK_W + 0.01
    (doc_number,) = texts(first, "发文字号")
    assert doc_number.x + width(fonts, doc_number) / 2 == pytest.approx(LEFT + BLOCK_W / 2)
    assert mark.y - doc_number.y > 2 * (BLOCK_H / LINES_PER_PAGE)  # 发文字号 two lines under the mark
    (red_line,) = [op for op in first.ops if isinstance(op, RuleOp)]
    assert red_line.color == RED and (red_line.x1, red_line.x2) == (LEFT, LEFT + BLOCK_W)
    assert doc_number.y - red_line.y == pytest.approx(0.12 * SIZE_3 + 4 * MM)
    title = texts(first, "标题")
    assert ["".join(op.text for op in title)] == ["广东省人民政府办公厅关于印发《广东省电子政务建设方案》的通知"]
    assert next(op.text for op in title).endswith("印发")  # broken before 《, not inside a word
    for op in title:
        assert op.size == SIZE_2 and op.face is Face.XIAOBIAOSONG
        assert op.x + width(fonts, op) / 2 == pytest.approx(LEFT + BLOCK_W / 2)
    recipients = texts(first, "主送机关")
    assert recipients[0].x == LEFT and recipients[-1].text.endswith("：")


def test_body_grid_and_headings(layouts: dict[str, tuple[Page, ...]], fonts: FontSet) -> None:
    pages = layouts["long"]
    assert len(pages) > 10
    line = BLOCK_H / LINES_PER_PAGE
    for page in pages:
        body = [op for op in texts(page) if op.element == "正文"]
        baselines = sorted({round(op.y, 3) for op in body}, reverse=True)
        assert len(baselines) <= LINES_PER_PAGE
        for a, b in itertools.pairwise(baselines):
            assert (a - b) / line == pytest.approx(round((a - b) / line), abs=1e-3)  # on the grid
        for op in body:
            assert op.size == SIZE_3
            assert op.x >= LEFT - 0.01 and op.x + width(fonts, op) <= LEFT + BLOCK_W + 0.01
            assert PAGE_H - TOP - BLOCK_H < op.y < PAGE_H - TOP
    # Every page between the first and the signature page is full: 22 lines.
    for page in pages[1:-2]:
        assert len({round(op.y, 3) for op in texts(page, "正文")}) == LINES_PER_PAGE
    # A full line of CJK text holds 28 characters.
    lines: dict[tuple[int, float], str] = {}
    for page in pages:
        for op in texts(page, "正文"):
            lines[(page.number, round(op.y, 3))] = lines.get((page.number, round(op.y, 3)), "") + op.text
    assert any(len(t) == 28 and all(ord(c) > 0x2E80 for c in t) for t in lines.values())
    # Headings: 一、 in 黑体, （一） in 楷体 up to its first full stop, then 仿宋.
    all_ops = [op for page in pages for op in texts(page, "正文")]
    assert any(op.face is Face.HEITI and op.text.startswith("一、") for op in all_ops)
    kaiti = [op for op in all_ops if op.face is Face.KAITI]
    assert kaiti and all("。" not in op.text[:-1] for op in kaiti)
    assert any(op.text.startswith("各地要按照") and op.face is Face.FANGSONG for op in all_ops)
    # Paragraphs indented two characters.
    firsts = [op for op in all_ops if op.text.startswith(("段落", "一、"))]
    assert firsts and all(op.x == pytest.approx(LEFT + 2 * CELL) for op in firsts)


def test_signature_seal_and_record(layouts: dict[str, tuple[Page, ...]], fonts: FontSet) -> None:
    last = layouts["notice"][-1]
    (date_op,) = texts(last, "成文日期")
    assert date_op.text == "2026年11月20日"
    assert date_op.x + width(fonts, date_op) == pytest.approx(LEFT + BLOCK_W - 4 * CELL)
    (name,) = texts(last, "发文机关署名")
    (seal,) = [op for op in last.ops if isinstance(op, SealOp)]
    assert seal.department == "gd.gov.office" and seal.name == "广东省人民政府办公厅"
    assert name.x + width(fonts, name) / 2 == pytest.approx(date_op.x + width(fonts, date_op) / 2)
    assert seal.cx == pytest.approx(date_op.x + width(fonts, date_op) / 2)
    assert seal.cy - SEAL_RADIUS < date_op.y < name.y < seal.cy  # both under the seal's centre, inside it
    # The seal's top is within a line of the end of the text.
    text_bottom = min(op.y for op in texts(last, "正文"))
    assert seal.cy + SEAL_RADIUS - text_bottom < BLOCK_H / LINES_PER_PAGE
    (note,) = texts(last, "附注")
    assert note.text == "（此件公开发布至各地级以上市人民政府。）" and note.x == pytest.approx(LEFT + 2 * CELL)
    assert note.y < date_op.y
    rules = [op for op in last.ops if isinstance(op, RuleOp)]
    assert [round(r.width / MM, 2) for r in rules] == [0.35, 0.25, 0.35]
    assert rules[-1].y == pytest.approx(PAGE_H - TOP - BLOCK_H)  # 末条分隔线 on the bottom of the text block
    (cc,) = texts(last, "抄送机关")
    assert cc.text == "抄送：广州市财政局，深圳市人民政府办公厅。" and cc.size == 14
    assert rules[0].y > cc.y > rules[1].y > texts(last, "印发机关")[0].y > rules[2].y


def test_joint_document_has_a_seal_per_department(layouts: dict[str, tuple[Page, ...]], fonts: FontSet) -> None:
    last = layouts["joint-notice"][-1]
    seals = [op for op in last.ops if isinstance(op, SealOp)]
    assert [s.department for s in seals] == ["gd.gov.czt", "gd.gov.gxt"]
    assert seals[1].cx - seals[0].cx > 2 * SEAL_RADIUS  # neither touching nor cutting each other
    assert seals[0].cy == seals[1].cy
    assert seals[0].cx - SEAL_RADIUS >= LEFT and seals[1].cx + SEAL_RADIUS <= LEFT + BLOCK_W
    names = texts(last, "发文机关署名")
    assert [n.text for n in names] == ["广东省财政厅", "广东省工业和信息化厅"]
    for n, s in zip(names, seals, strict=True):
        assert n.x + width(fonts, n) / 2 == pytest.approx(s.cx)
    first = layouts["joint-notice"][0]
    marks = texts(first, "发文机关标志")
    assert [m.text for m in marks] == ["广东省财政厅", "广东省工业和信息化厅", "文件"]
    assert marks[0].y > marks[1].y and marks[1].y < marks[2].y < marks[0].y  # 文件 centred beside the names


def test_upward_document_header(layouts: dict[str, tuple[Page, ...]]) -> None:
    first = layouts["request"][0]
    (number,) = texts(first, "发文字号")
    signer = texts(first, "签发人")
    assert number.x == pytest.approx(LEFT + CELL)  # 居左空一字
    assert [op.text for op in signer] == ["签发人：", "李明"]
    assert [op.face for op in signer] == [Face.FANGSONG, Face.KAITI]
    assert all(op.y == number.y for op in signer)
    assert texts(first, "密级和保密期限")[0].text == "秘密★1年"
    note = [op for page in layouts["request"] for op in texts(page, "附件说明")]
    assert [op.text for op in note] == ["附件：1.政务外网安全改造项目预算明细表", "2.安全检查问题清单"]
    assert note[1].x > note[0].x


def test_attachments_on_pages_of_their_own(layouts: dict[str, tuple[Page, ...]]) -> None:
    pages = layouts["letter"]
    starts = [p for p in pages if texts(p, "附件") and texts(p, "附件")[0].text.startswith("附件")]
    assert [texts(p, "附件")[0].text for p in starts] == ["附件1", "附件2"]
    for page in starts:
        heading = texts(page, "附件")[0]
        assert heading.face is Face.HEITI and heading.x == LEFT
        assert heading.y == pytest.approx(PAGE_H - TOP - 0.5 * BLOCK_H / LINES_PER_PAGE - 0.38 * SIZE_3)


def test_page_numbers_alternate_sides(layouts: dict[str, tuple[Page, ...]], fonts: FontSet) -> None:
    for page in layouts["long"]:
        (number,) = texts(page, "页码")
        assert number.text == f"— {page.number} —"
        assert number.y < PAGE_H - TOP - BLOCK_H - 7 * MM
        if page.number % 2:
            assert number.x + width(fonts, number) == pytest.approx(LEFT + BLOCK_W - 14)
        else:
            assert number.x == pytest.approx(LEFT + 14)


def test_a_character_no_font_has_is_refused(
    document_builder: Callable[..., Document], fonts: FontSet, pki: Any, now: datetime
) -> None:
    doc = document_builder(body=("请按要求开展测试\U0003134a。",))
    assert fonts.missing(Face.FANGSONG, "\U0003134a") == "\U0003134a"
    with pytest.raises(DocumentError, match="U\\+3134A") as caught:
        render_pdf(doc, (), fonts)
    assert caught.value.element == "正文"


def test_missing_font_names_the_package(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="apt-get install fonts-arphic-uming"):
        load_fonts((tmp_path,))


def test_layout_is_a_pure_function(verified_examples: dict[str, VerifiedDocument], fonts: FontSet) -> None:
    v = verified_examples["joint-notice"]
    assert render_pdf(v.document, v.signatures, fonts) == render_pdf(v.document, v.signatures, fonts)


# --- gwx render and gwx verify -------------------------------------------------------------------------------


def gwx_path() -> str:
    beside = Path(sys.executable).parent / "gwx"
    found = str(beside) if beside.is_file() else shutil.which("gwx")
    assert found, "the gwx console script is not installed (pip install -e .)"
    return found


def gwx(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GWX_")}
    env.update(GWX_CA_PASSPHRASE="pdf-test-ca-passphrase", GWX_KEY_PASSPHRASE="pdf-test-key-passphrase")
    return subprocess.run(
        [gwx_path(), *args], cwd=folder, env=env, capture_output=True, text=True, check=False, timeout=300
    )


def test_gwx_render_and_verify(tmp_path: Path, examples_dir: Path) -> None:
    folder = tmp_path / "site"
    shutil.copytree(examples_dir, folder)
    key = ["--key", "ca/issued/gd.gov.office/signing.key", "--cert", "ca/issued/gd.gov.office/signing.crt"]
    trust = ["--root", "ca/root.crt", "--crl", "ca/crl.pem"]
    steps = [
        ["pki", "init", "--name", "广东省电子政务安全中心", "--code", "gd.gov.ca", "--home", "ca"],
        [
            "pki",
            "issue",
            "--code",
            "gd.gov.office",
            "--name",
            "广东省人民政府办公厅",
            "--role",
            "department",
            "--home",
            "ca",
        ],
        [
            "pki",
            "issue",
            "--code",
            "gd.gov.gxt",
            "--name",
            "广东省工业和信息化厅",
            "--role",
            "department",
            "--home",
            "ca",
        ],
        ["doc", "new", "notice.toml", "-o", "notice.xml"],
        ["doc", "sign", "notice.xml", *key],
    ]
    for step in steps:
        done = gwx(folder, *step)
        assert done.returncode == 0, done.stderr
    done = gwx(folder, "render", "notice.signed.xml", "-o", "notice.pdf", *key, *trust)
    assert done.returncode == 0 and done.stderr == "", done.stderr  # not a word from pyHanko or cryptography
    assert "已生成：notice.pdf（粤办发〔2026〕12号，6 页）" in done.stdout
    done = gwx(folder, "verify", "notice.pdf", *trust)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("验证通过")
    assert "PDF 签名：广东省人民政府办公厅（gd.gov.office）" in done.stdout
    assert "公文签署：广东省人民政府办公厅（gd.gov.office）" in done.stdout
    done = gwx(folder, "verify", "notice.pdf", *trust, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["kind"] == "pdf" and report["pdf_signatures"][0]["department"] == "gd.gov.office"

    pdf = (folder / "notice.pdf").read_bytes()
    xml = (folder / "notice.signed.xml").read_bytes()
    i = pdf.index(xml) + xml.index("印发《".encode()) + 3
    (folder / "xml-changed.pdf").write_bytes(pdf[:i] + "废".encode() + pdf[i + 3 :])
    j = pdf.index(b"/Creator")
    (folder / "bytes-changed.pdf").write_bytes(pdf[:j] + pdf[j:].replace(b"gwexchange", b"gwexchangf", 1))
    # An incremental update that swaps the embedded XML: pyHanko logs its own traceback while it validates.
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    spec_ref = writer.root["/AF"].raw_get(0)
    spec = spec_ref.get_object()
    swapped = writer.add_object(generic.StreamObject(stream_data=xml))
    spec["/EF"] = generic.DictionaryObject({generic.NameObject("/F"): swapped})
    writer.mark_update(spec_ref)
    with (folder / "updated.pdf").open("wb") as out:
        writer.write(out)
    for name in ("xml-changed.pdf", "bytes-changed.pdf", "updated.pdf"):
        done = gwx(folder, "verify", name, *trust)
        assert done.returncode == 1, done.stdout
        assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith("gwx: 签名无效："), done.stderr
        assert "Traceback" not in done.stderr
    # The libraries' noise is there to be shown: --verbose lets it through, and the refusal is still the last line.
    done = gwx(folder, "--verbose", "verify", "updated.pdf", *trust)
    assert done.returncode == 1 and len(done.stderr.splitlines()) > 1, done.stderr
    assert done.stderr.splitlines()[-1].startswith("gwx: 签名无效：")

    other = ["--key", "ca/issued/gd.gov.gxt/signing.key", "--cert", "ca/issued/gd.gov.gxt/signing.crt"]
    done = gwx(folder, "render", "notice.signed.xml", "-o", "x.pdf", *other, *trust)
    assert done.returncode == 1 and done.stderr.startswith("gwx: 配置错误：")
    assert not (folder / "x.pdf").exists()
