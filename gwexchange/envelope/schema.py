"""Validation of the 公文 XML against ``gwexchange/schemas/gongwen.xsd``.

Two validators over one schema file: libxml2 (through lxml) is the fast gate on every read; when it refuses, the
pure-Python xmlschema validates again to explain, and the message names the element in Chinese.
"""

from __future__ import annotations

import functools
import importlib.resources
import re
from pathlib import Path
from typing import Any

from lxml import etree

from gwexchange.errors import ConfigError, DocumentError, EnvelopeError

# Chinese names of the schema's elements and attributes, for clerk-facing messages.
CHINESE_NAMES = {
    "Document": "公文",
    "Kind": "文种",
    "CopyNumber": "份号",
    "Classification": "密级",
    "period": "保密期限",
    "Urgency": "紧急程度",
    "Issuers": "发文机关",
    "IssuerMark": "发文机关标志",
    "DocNumber": "发文字号",
    "Signer": "签发人",
    "Title": "标题",
    "MainRecipients": "主送机关",
    "line": "主送机关",
    "Department": "机关",
    "code": "机关代码",
    "Body": "正文",
    "P": "正文段落",
    "AttachmentNote": "附件说明",
    "Item": "附件说明",
    "SignatureName": "发文机关署名",
    "Date": "成文日期",
    "Note": "附注",
    "Attachments": "附件",
    "Attachment": "附件",
    "CopyRecipients": "抄送机关",
    "Printer": "印发机关",
    "PrintDate": "印发日期",
    "Signing": "签署",
}


def _schema_path(name: str = "gongwen.xsd") -> Path:
    """A schema of the package (``gwexchange/schemas/``), found through ``importlib.resources``."""
    resource = importlib.resources.files("gwexchange").joinpath("schemas", name)
    if not resource.is_file():
        raise ConfigError(f"this installation of gwexchange lacks its schema {name}: install it again")
    return Path(str(resource))


@functools.cache
def _libxml2_schema(name: str = "gongwen.xsd") -> etree.XMLSchema:
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    return etree.XMLSchema(etree.parse(str(_schema_path(name)), parser))


@functools.cache
def _xmlschema_schema() -> Any:
    import xmlschema  # noqa: PLC0415  # only to explain a failure; its import costs a third of a second

    return xmlschema.XMLSchema(str(_schema_path()))


def check_envelope(root: etree._Element) -> None:
    """Raise ``EnvelopeError`` unless ``root`` is a valid envelope (``schemas/envelope.xsd``)."""
    _check_protocol(root, "envelope.xsd", "envelope")


def check_receipt(root: etree._Element) -> None:
    """Raise ``EnvelopeError`` unless ``root`` is a valid receipt (``schemas/receipt.xsd``)."""
    _check_protocol(root, "receipt.xsd", "receipt")


def _check_protocol(root: etree._Element, name: str, what: str) -> None:
    validator = _libxml2_schema(name)
    if not validator.validate(root):
        log = str(validator.error_log).splitlines()
        raise EnvelopeError(f"not a valid {what}: {log[-1] if log else 'schema validation failed'}")


def check(root: etree._Element) -> None:
    """Raise ``DocumentError`` unless ``root`` is a valid 公文 element (draft or signed)."""
    if _libxml2_schema().validate(root):
        return
    for error in _xmlschema_schema().iter_errors(root):
        raise DocumentError(_element_name(error), f"不符合公文格式规范：{_reason(error)}")
    # Both validators implement XSD 1.0; if only libxml2 objects, report its words.
    log = str(_libxml2_schema().error_log).splitlines()
    raise DocumentError("公文", f"不符合公文格式规范：{log[-1] if log else 'schema validation failed'}")


def _element_name(error: Any) -> str:
    path = str(getattr(error, "path", "") or "")
    steps = [re.sub(r"^.*[:}]|\[\d+\]$", "", step) for step in path.split("/") if step]
    reason = str(getattr(error, "reason", "") or "")
    attribute = re.search(r"attribute (\w+)=", reason)
    if attribute and attribute.group(1) in CHINESE_NAMES:
        return CHINESE_NAMES[attribute.group(1)]
    expected = re.search(r"Tag '(?:\w+:)?(\w+)' expected", reason)  # a required element is missing
    if expected and expected.group(1) in CHINESE_NAMES:
        return CHINESE_NAMES[expected.group(1)]
    for step in reversed(steps):
        if step in CHINESE_NAMES:
            return CHINESE_NAMES[step]
    return "公文"


def _reason(error: Any) -> str:
    return str(getattr(error, "reason", None) or error).replace("\n", " ")


def check_directory(root: etree._Element) -> None:
    """Raise ``ConfigError`` unless ``root`` is a valid directory, signed or not (``schemas/directory.xsd``)."""
    validator = _libxml2_schema("directory.xsd")
    if not validator.validate(root):
        log = str(validator.error_log).splitlines()
        raise ConfigError(f"not a valid directory: {log[-1] if log else 'schema validation failed'}")


__all__ = [
    "CHINESE_NAMES",
    "check",
    "check_directory",
    "check_envelope",
    "check_receipt",
]
