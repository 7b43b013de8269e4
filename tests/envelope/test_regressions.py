"""Regressions: inputs that once slipped past the model or reached the clerk as a Python error."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import pytest
from lxml import etree

from gwexchange.crypto.certificates import Usage
from gwexchange.crypto.xmldsig import Signer
from gwexchange.envelope.description import load_description
from gwexchange.envelope.model import Classification, Department, DocKind, DocNumber, Document
from gwexchange.envelope.signing import sign_document
from gwexchange.envelope.xmlform import document_from_element, document_to_xml, q
from gwexchange.errors import ConfigError, DocumentError


def make(**overrides: Any) -> Document:
    fields: dict[str, Any] = {
        "kind": DocKind.NOTICE,
        "classification": Classification.PUBLIC,
        "issuers": (Department("gd.gov.office"),),
        "issuer_mark": "广东省人民政府办公厅文件",
        "doc_number": DocNumber("粤办发〔2026〕12号"),
        "title": "关于测试的通知",
        "body": ("正文。",),
        "signature_names": ("广东省人民政府办公厅",),
        "date": date(2026, 11, 20),
        "main_recipients": (Department("gd.gov.czt"),),
    }
    fields.update(overrides)
    return Document(**fields)


@pytest.mark.parametrize("text", ["粤办发〔２０２６〕12号", "粤办发〔2026〕１２号", "粤办发〔٢٠٢٦〕12号"])
def test_doc_number_with_non_ascii_digits_is_refused_by_the_model(text: str) -> None:
    with pytest.raises(DocumentError) as caught:
        DocNumber(text)
    assert caught.value.element == "发文字号"


def test_secrecy_period_with_non_ascii_digits_is_refused_by_the_model() -> None:
    with pytest.raises(DocumentError) as caught:
        make(classification=Classification.SECRET, copy_number="000001", secrecy_period="1０年")
    assert caught.value.element == "保密期限"


@pytest.mark.parametrize("field", ["date", "print_date"])
def test_a_datetime_is_not_a_date(field: str) -> None:
    values: dict[str, Any] = {"printer": "秘书处", "print_date": date(2026, 11, 21)}
    values[field] = datetime(2026, 11, 21, 8, 0)
    with pytest.raises(DocumentError) as caught:
        make(**values)
    assert caught.value.element == {"date": "成文日期", "print_date": "印发日期"}[field]


def test_a_toml_datetime_in_a_description_is_a_document_error() -> None:
    toml = """
kind = "通知"
classification = "公开"
issuer = "gd.gov.office"
issuer_mark = "广东省人民政府办公厅文件"
doc_number = "粤办发〔2026〕12号"
title = "关于测试的通知"
to = ["gd.gov.czt"]
body = "body.txt"
signature_name = "广东省人民政府办公厅"
date = 2026-11-20T08:00:00
"""

    def no_attachments(name: str) -> tuple[int, str]:
        raise AssertionError(name)

    with pytest.raises(DocumentError) as caught:
        load_description(toml, lambda name: "正文。".encode(), no_attachments)
    assert caught.value.element == "成文日期"


def test_a_missing_required_element_is_named_in_chinese() -> None:
    root = etree.fromstring(document_to_xml(make()))
    signature_name = root.find(q("SignatureName"))
    assert signature_name is not None
    root.remove(signature_name)
    with pytest.raises(DocumentError) as caught:
        document_from_element(root)
    assert caught.value.element == "发文机关署名"


def test_an_encryption_certificate_cannot_sign(pki: Any, now: datetime) -> None:
    signer_for: Callable[..., Signer] = pki.signer
    with pytest.raises(ConfigError, match="not a signing certificate"):
        sign_document(document_to_xml(make()), signer_for("gd.gov.office", Usage.ENCRYPTION), at=now)
