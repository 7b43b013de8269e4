"""The XML form of a 公文 (namespace ``urn:gwexchange:document:1``, schema ``gwexchange/schemas/gongwen.xsd``).

``document_to_xml`` writes a draft; ``document_from_element`` reads the content of a draft or signed document back
into the model. Reading trusts nothing: the element is validated against the schema first (libxml2, fast), and on
failure the clerk-facing message comes from xmlschema, naming the element in Chinese.
"""

from __future__ import annotations

from datetime import date

from lxml import etree

from gwexchange.envelope import schema
from gwexchange.envelope.model import (
    Attachment,
    Classification,
    Department,
    DocKind,
    DocNumber,
    Document,
    Urgency,
)
from gwexchange.errors import DocumentError

NS = "urn:gwexchange:document:1"
DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"
_Q = "{" + NS + "}"


def q(local: str) -> str:
    """The qualified (Clark) name of one of our elements."""
    return _Q + local


def document_to_element(doc: Document) -> etree._Element:
    root = etree.Element(q("Document"), nsmap={"gw": NS})

    def add(parent: etree._Element, local: str, text: str | None = None, **attrs: str) -> etree._Element:
        el = etree.SubElement(parent, q(local), attrs)
        el.text = text
        return el

    def departments(local: str, items: tuple[Department, ...], **attrs: str) -> None:
        group = add(root, local, **attrs)
        for d in items:
            add(group, "Department", d.name, code=d.code)

    add(root, "Kind", doc.kind.value)
    if doc.copy_number is not None:
        add(root, "CopyNumber", doc.copy_number)
    period = {"period": doc.secrecy_period} if doc.secrecy_period else {}
    add(root, "Classification", doc.classification.value, **period)
    if doc.urgency is not None:
        add(root, "Urgency", doc.urgency.value)
    departments("Issuers", doc.issuers)
    add(root, "IssuerMark", doc.issuer_mark)
    add(root, "DocNumber", doc.doc_number.text)
    for signer in doc.signers:
        add(root, "Signer", signer)
    add(root, "Title", doc.title)
    if doc.main_recipients or doc.main_recipients_line:
        line = {"line": doc.main_recipients_line} if doc.main_recipients_line else {}
        departments("MainRecipients", doc.main_recipients, **line)
    body = add(root, "Body")
    for paragraph in doc.body:
        add(body, "P", paragraph)
    if doc.attachment_note:
        note = add(root, "AttachmentNote")
        for name in doc.attachment_note:
            add(note, "Item", name)
    for name in doc.signature_names:
        add(root, "SignatureName", name)
    add(root, "Date", doc.date.isoformat())
    if doc.note is not None:
        add(root, "Note", doc.note)
    if doc.attachments:
        group = add(root, "Attachments")
        for a in doc.attachments:
            add(
                group,
                "Attachment",
                title=a.title,
                file=a.file_name,
                mediaType=a.media_type,
                size=str(a.size),
                sha256=a.sha256,
            )
    if doc.copy_recipients:
        departments("CopyRecipients", doc.copy_recipients)
    if doc.printer is not None and doc.print_date is not None:
        add(root, "Printer", doc.printer)
        add(root, "PrintDate", doc.print_date.isoformat())
    etree.indent(root, space="  ")
    return root


def document_to_xml(doc: Document) -> bytes:
    """The draft (unsigned) XML of ``doc``, UTF-8 with an XML declaration."""
    root = document_to_element(doc)
    schema.check(root)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8") + b"\n"


def document_from_element(root: etree._Element) -> Document:
    """Read a document element (draft or signed) into the model; raise ``DocumentError`` if it is not one."""
    schema.check(root)
    # The schema fixed the structure, so one pass over the children finds every element.
    top: dict[str, list[etree._Element]] = {}
    for child in root:
        top.setdefault(child.tag, []).append(child)

    def element(local: str) -> etree._Element | None:
        found = top.get(_Q + local)
        return found[0] if found else None

    def text(local: str) -> str | None:
        el = element(local)
        return None if el is None else (el.text or "")

    def texts(local: str) -> tuple[str, ...]:
        return tuple(el.text or "" for el in top.get(_Q + local, ()))

    def inner_texts(local: str) -> tuple[str, ...]:
        el = element(local)
        return () if el is None else tuple(child.text or "" for child in el)

    def departments(local: str) -> tuple[Department, ...]:
        el = element(local)
        return () if el is None else tuple(Department(code=d.get("code", ""), name=d.text) for d in el)

    classification = element("Classification")
    main = element("MainRecipients")
    printed = text("PrintDate")
    urgency = text("Urgency")
    attachments = element("Attachments")
    return Document(
        kind=DocKind(text("Kind") or ""),
        copy_number=text("CopyNumber"),
        classification=Classification(classification.text or "" if classification is not None else ""),
        secrecy_period=classification.get("period") if classification is not None else None,
        urgency=Urgency(urgency) if urgency is not None else None,
        issuers=departments("Issuers"),
        issuer_mark=text("IssuerMark") or "",
        doc_number=DocNumber(text("DocNumber") or ""),
        signers=texts("Signer"),
        title=text("Title") or "",
        main_recipients=departments("MainRecipients"),
        main_recipients_line=main.get("line") if main is not None else None,
        body=inner_texts("Body"),
        attachment_note=inner_texts("AttachmentNote"),
        signature_names=texts("SignatureName"),
        date=_date("成文日期", text("Date") or ""),
        note=text("Note"),
        attachments=()
        if attachments is None
        else tuple(
            Attachment(
                title=el.get("title", ""),
                file_name=el.get("file", ""),
                media_type=el.get("mediaType", ""),
                size=int(el.get("size", "-1")),
                sha256=el.get("sha256", ""),
            )
            for el in attachments
        ),
        copy_recipients=departments("CopyRecipients"),
        printer=text("Printer"),
        print_date=_date("印发日期", printed) if printed is not None else None,
    )


def _date(element: str, value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as e:
        raise DocumentError(element, f"“{value}”不是有效日期（应为 YYYY-MM-DD）") from e


__all__ = [
    "DSIG_NS",
    "NS",
    "document_from_element",
    "document_to_element",
    "document_to_xml",
    "q",
]
