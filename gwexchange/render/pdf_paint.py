"""The laid-out pages of a 公文 (``pdf_layout``) drawn as a PDF with reportlab: text in its fonts, rules, seals.

Pure: pages and fonts in, PDF bytes out; no file I/O, no clock.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reportlab.pdfgen import canvas  # type: ignore[import-untyped]

from gwexchange.envelope.model import Document
from gwexchange.envelope.signing import DocumentSignature
from gwexchange.render.fonts import Face, FontSet
from gwexchange.render.pdf_layout import (
    MM,
    PAGE_H,
    PAGE_W,
    RED,
    SEAL_RADIUS,
    SIZE_3,
    Page,
    RuleOp,
    SealOp,
    TextOp,
    layout_pages,
)


@dataclass(frozen=True, slots=True)
class PdfInfo:
    """The document information dictionary."""

    title: str
    author: str
    subject: str
    keywords: str = ""


def _info_of(document: Document) -> PdfInfo:
    return PdfInfo(
        title=document.title,
        author="、".join(document.signature_names),
        subject=document.doc_number.text,
        keywords=f"{document.kind}；GB/T 9704-2012",
    )


def _paint(pages: Sequence[Page], fonts: FontSet, info: PdfInfo) -> bytes:
    """Draw laid-out pages with reportlab; the fonts are embedded (subset)."""
    out = io.BytesIO()
    # invariant: the same document gives the same bytes (no creation time, no random ID, from reportlab).
    c = canvas.Canvas(
        out,
        pagesize=(PAGE_W, PAGE_H),
        invariant=1,
        pageCompression=1,
        initialFontName=fonts.primary(Face.FANGSONG).name,
        initialFontSize=SIZE_3,
    )
    c.setTitle(info.title)
    c.setAuthor(info.author)
    c.setSubject(info.subject)
    c.setKeywords(info.keywords)
    c.setCreator("gwexchange")
    for page in pages:
        for op in page.ops:
            if isinstance(op, TextOp):
                _paint_text(c, fonts, op)
            elif isinstance(op, RuleOp):
                c.saveState()
                c.setStrokeColorRGB(*op.color)
                c.setLineWidth(op.width)
                c.line(op.x1, op.y, op.x2, op.y)
                c.restoreState()
            else:
                _paint_seal(c, fonts, op)
        c.showPage()
    c.save()
    return out.getvalue()


def render_pdf(
    document: Document,
    signatures: Sequence[DocumentSignature],
    fonts: FontSet,
    *,
    attachments: Mapping[str, bytes] | None = None,
) -> bytes:
    """``document`` as a GB/T 9704 PDF, with a seal mark for each department in ``signatures``."""
    return _paint(layout_pages(document, signatures, fonts, attachments=attachments), fonts, _info_of(document))


def _paint_text(c: canvas.Canvas, fonts: FontSet, op: TextOp) -> None:
    c.saveState()
    text = c.beginText(op.x, op.y)
    text.setCharSpace(op.char_space)
    if op.scale != 1.0:
        text.setHorizScale(op.scale * 100)
    text.setFillColorRGB(*op.color)
    if op.face in fonts.bold:
        # 小标宋 is a heavy Song; the stand-in is thickened by stroking its outlines in the text colour.
        text.setTextRenderMode(2)
        c.setStrokeColorRGB(*op.color)
        c.setLineWidth(op.size * 0.03)
    for font_name, chars in fonts.runs(op.face, op.text):
        text.setFont(font_name, op.size)
        text.textOut(chars)
    c.drawText(text)
    c.restoreState()


def _paint_seal(c: canvas.Canvas, fonts: FontSet, op: SealOp) -> None:
    """A round red seal: the ring, a five-pointed star, and the department's name along the upper arc.

    The lettering is drawn from the glyph outlines, not as text: it is a picture of a seal, and the 署名 under it
    already says the name once in the text of the page.
    """
    r = SEAL_RADIUS
    ring = 1.2 * MM
    c.saveState()
    c.setBlendMode("Multiply")  # red ink over black text, as a real seal prints
    c.setStrokeColorRGB(*RED)
    c.setFillColorRGB(*RED)
    c.setLineWidth(ring)
    c.circle(op.cx, op.cy, r - ring / 2, stroke=1, fill=0)
    star = c.beginPath()
    outer, inner = r * 0.32, r * 0.32 * 0.382
    for k in range(10):
        radius = outer if k % 2 == 0 else inner
        angle = math.radians(90 + k * 36)
        px, py = op.cx + radius * math.cos(angle), op.cy + radius * math.sin(angle)
        if k == 0:
            star.moveTo(px, py)
        else:
            star.lineTo(px, py)
    star.close()
    c.drawPath(star, stroke=0, fill=1)

    chars = list(op.name)
    height = 0.17 * 2 * r
    radius = r - ring - 1.2 * MM - 0.88 * height  # baseline of the lettering
    span = math.radians(min(250.0, max(150.0, 22.0 * len(chars))))
    step = span / len(chars)
    squeeze = min(1.0, step * (radius + 0.44 * height) * 0.9 / height)
    for i, char in enumerate(chars):
        angle = math.pi / 2 + span / 2 - (i + 0.5) * step
        c.saveState()
        c.translate(op.cx + radius * math.cos(angle), op.cy + radius * math.sin(angle))
        c.rotate(math.degrees(angle) - 90)
        c.scale(height * squeeze, height)
        c.translate(-0.5, 0)
        path = c.beginPath()
        for command in fonts.outline(Face.XIAOBIAOSONG, char):
            if command[0] == "M":
                path.moveTo(command[1], command[2])
            elif command[0] == "L":
                path.lineTo(command[1], command[2])
            elif command[0] == "C":
                path.curveTo(*command[1:])
            else:
                path.close()
        # Overlapping contours are common in CJK glyphs: fill by the non-zero rule, as the font means. The
        # stroke gives the light Song the weight of carved lettering.
        c.setLineWidth(0.035)
        c.drawPath(path, stroke=1, fill=1, fillMode=canvas.FILL_NON_ZERO)
        c.restoreState()
    c.restoreState()


__all__ = ["PdfInfo", "render_pdf"]
