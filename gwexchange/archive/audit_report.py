"""The audit's findings as a PDF in Chinese (``gwx audit report``): for the file, the court, the inspector.

Pure: an ``audit.AuditReport`` and the loaded fonts in, PDF bytes out. A4 portrait, set in the stand-ins of the
GB/T 9704 faces (``fonts.py``: 黑体 for headings, 仿宋 for text), every character from the first font of its
face that has it, the fonts embedded as subsets, as the documents themselves are (``pdf_layout.py``). The
sections: 概要 (the verdict and one row per node), 发现的问题 (every failure, where and what), then per node the
公文 (message id, sender, recipients with their states) and the 回执. A table longer than
``MAX_TABLE_ROWS`` is cut, and says so: the complete tables are in ``gwx audit verify --json``.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

from reportlab.pdfgen import canvas  # type: ignore[import-untyped]

from gwexchange.archive.audit_model import AuditReport, Check, Finding, NodeAudit
from gwexchange.envelope.times import format_utc
from gwexchange.render.fonts import Face, FontSet

_MM = 72 / 25.4
PAGE_W, PAGE_H = 210 * _MM, 297 * _MM
MARGIN_X, MARGIN_TOP, MARGIN_BOTTOM = 18 * _MM, 20 * _MM, 18 * _MM
_TEXT_W = PAGE_W - 2 * MARGIN_X
MAX_TABLE_ROWS = 2000

_Color = tuple[float, float, float]
_BLACK: _Color = (0.0, 0.0, 0.0)
_GREY: _Color = (0.45, 0.45, 0.45)
_RED: _Color = (0.78, 0.0, 0.05)
_GREEN: _Color = (0.0, 0.45, 0.15)
_RULE: _Color = (0.6, 0.6, 0.6)


@dataclass(frozen=True, slots=True)
class _Column:
    title: str
    width: float  # in millimetres


class _Writer:
    """A flow of headings, paragraphs and tables down A4 pages, with page numbers."""

    def __init__(self, fonts: FontSet, title: str) -> None:
        self.fonts = fonts
        self.out = io.BytesIO()
        # invariant: the same report gives the same bytes (no creation time, no random ID).
        self.c = canvas.Canvas(self.out, pagesize=(PAGE_W, PAGE_H), invariant=1, pageCompression=1)
        self.c.setTitle(title)
        self.c.setAuthor("gwexchange")
        self.c.setSubject("公文交换审计报告")
        self.c.setCreator("gwexchange")
        self.page = 1
        self.y = PAGE_H - MARGIN_TOP

    # --- text ---

    def width(self, text: str, face: Face, size: float) -> float:
        total = 0.0
        for char in text:
            font = self.fonts.font_for(face, char) or self.fonts.primary(face)
            total += font.advance(char) * size
        return total

    def wrap(self, text: str, face: Face, size: float, width: float) -> list[str]:
        """Lines of ``text`` no wider than ``width``: broken between characters (Chinese has no spaces), at a space
        when one is near, and at every newline."""
        lines: list[str] = []
        for paragraph in text.split("\n") or [""]:
            line = ""
            used = 0.0
            for char in paragraph:
                advance = self.width(char, face, size)
                if line and used + advance > width:
                    cut = line.rfind(" ")
                    if cut > len(line) * 2 // 3:
                        lines.append(line[:cut])
                        line = line[cut + 1 :]
                    else:
                        lines.append(line)
                        line = ""
                    used = self.width(line, face, size)
                line += char
                used += advance
            lines.append(line)
        return lines

    def draw(self, x: float, y: float, text: str, face: Face, size: float, color: _Color = _BLACK) -> None:
        c = self.c
        c.saveState()
        t = c.beginText(x, y)
        t.setFillColorRGB(*color)
        for name, chars in self.fonts.runs(face, text):
            t.setFont(name, size)
            t.textOut(chars)
        c.drawText(t)
        c.restoreState()

    # --- pages ---

    def need(self, height: float) -> bool:
        """Start a new page unless ``height`` fits; True if a page was started."""
        if self.y - height >= MARGIN_BOTTOM:
            return False
        self.new_page()
        return True

    def new_page(self) -> None:
        self._footer()
        self.c.showPage()
        self.page += 1
        self.y = PAGE_H - MARGIN_TOP

    def _footer(self) -> None:
        text = f"— {self.page} —"
        size = 10.0
        self.draw(
            (PAGE_W - self.width(text, Face.FANGSONG, size)) / 2, MARGIN_BOTTOM / 2, text, Face.FANGSONG, size, _GREY
        )

    def finish(self) -> bytes:
        self._footer()
        self.c.showPage()
        self.c.save()
        return self.out.getvalue()

    # --- blocks ---

    def title(self, text: str) -> None:
        size = 20.0
        self.draw((PAGE_W - self.width(text, Face.HEITI, size)) / 2, self.y - size, text, Face.HEITI, size)
        self.y -= size * 2

    def heading(self, text: str, size: float = 14.0) -> None:
        self.need(size * 3)
        self.y -= size * 0.8
        self.draw(MARGIN_X, self.y - size, text, Face.HEITI, size)
        self.y -= size * 1.6

    def paragraph(self, text: str, size: float = 10.5, *, color: _Color = _BLACK, indent: float = 0.0) -> None:
        leading = size * 1.5
        for line in self.wrap(text, Face.FANGSONG, size, _TEXT_W - indent):
            self.need(leading)
            self.draw(MARGIN_X + indent, self.y - size, line, Face.FANGSONG, size, color)
            self.y -= leading
        self.y -= size * 0.3

    def table(self, columns: Sequence[_Column], rows: Sequence[Sequence[str]], size: float = 8.5) -> None:
        """Rows with wrapped cells, the header again at the top of every page; rule lines between rows."""
        widths = [col.width * _MM for col in columns]
        scale = _TEXT_W / sum(widths)
        widths = [w * scale for w in widths]
        pad = 1.2 * _MM
        leading = size * 1.35

        def row_height(cells: Sequence[list[str]]) -> float:
            return max(len(lines) for lines in cells) * leading + 2 * pad

        def draw_row(cells: Sequence[list[str]], face: Face, shade: bool) -> None:
            height = row_height(cells)
            if shade:
                self.c.saveState()
                self.c.setFillColorRGB(0.92, 0.92, 0.92)
                self.c.rect(MARGIN_X, self.y - height, _TEXT_W, height, stroke=0, fill=1)
                self.c.restoreState()
            x = MARGIN_X
            for lines, width in zip(cells, widths, strict=True):
                y = self.y - pad - size
                for line in lines:
                    self.draw(x + pad, y, line, face, size)
                    y -= leading
                x += width
            self.y -= height
            self.c.saveState()
            self.c.setStrokeColorRGB(*_RULE)
            self.c.setLineWidth(0.3)
            self.c.line(MARGIN_X, self.y, MARGIN_X + _TEXT_W, self.y)
            self.c.restoreState()

        def wrap_cells(texts: Sequence[str], face: Face) -> list[list[str]]:
            return [self.wrap(t, face, size, w - 2 * pad) for t, w in zip(texts, widths, strict=True)]

        header = wrap_cells([col.title for col in columns], Face.HEITI)
        self.need(row_height(header) + leading * 2 + 2 * pad)
        draw_row(header, Face.HEITI, True)
        for row in rows:
            cells = wrap_cells(row, Face.FANGSONG)
            if self.need(row_height(cells)):
                draw_row(header, Face.HEITI, True)
            draw_row(cells, Face.FANGSONG, False)
        self.y -= size


def render_report(report: AuditReport, fonts: FontSet) -> bytes:
    """The audit report as PDF bytes (see the module docstring)."""
    w = _Writer(fonts, "公文交换审计报告")
    w.title("公文交换审计报告")
    verdict = "结论：全部检查通过" if report.ok else f"结论：未通过，共 {_count(report)} 项问题"
    audited = "、".join(n.node_id for n in report.nodes)
    w.paragraph(f"审计时间：{format_utc(report.at.replace(microsecond=0))}　　所审节点：{audited}")
    w.paragraph(verdict, 13.0, color=_GREEN if report.ok else _RED)

    w.heading("一、概要")
    w.paragraph(
        "审计依据各节点的 Merkle 日志（RFC 9162）：每一条目与日志结构、节点签署的每一个树头、每个信封的节点签名"
        "（按信封生成时有效的交换目录核对节点证书）、每份回执的签名及其所答复的公文、收文的签名与送达回执所绑定"
        "的摘要、回执完整性，以及各节点所持其他节点树头与该节点日志的一致性。"
    )
    w.table(
        [
            _Column("节点", 18),
            _Column("来源", 40),
            _Column("日志条目", 14),
            _Column("最新树头", 34),
            _Column("日志根哈希", 30),
            _Column("公文/回执/收文", 20),
            _Column("结论", 18),
        ],
        [_node_row(report, n) for n in report.nodes],
    )
    for note in report.notes:
        w.paragraph(f"注：{note}", 9.5, color=_GREY)

    w.heading("二、发现的问题")
    if not report.findings:
        w.paragraph("未发现问题。")
    else:
        w.table(
            [_Column("节点", 16), _Column("检查项", 20), _Column("位置", 46), _Column("问题", 100)],
            [_finding_row(f) for f in report.findings],
        )
        if report.findings_not_listed:
            w.paragraph(f"另有 {report.findings_not_listed} 项问题未列出。", color=_RED)

    for number, node in enumerate(report.nodes):
        w.heading(f"{_ordinal(3 + 2 * number)}、节点 {node.node_id} 的公文")
        _capped_table(
            w,
            [
                _Column("条目", 11),
                _Column("消息编号", 40),
                _Column("发文机关", 28),
                _Column("收文机关及状态", 60),
                _Column("本节点", 14),
            ],
            [
                [
                    str(d.index),
                    d.message_id,
                    f"{d.sender_department}（{d.sender_node}）",
                    "\n".join(f"{code}：{state}" for code, state in d.states),
                    d.role,
                ]
                for d in node.documents
            ],
        )
        w.heading(f"{_ordinal(4 + 2 * number)}、节点 {node.node_id} 的回执")
        _capped_table(
            w,
            [
                _Column("条目", 10),
                _Column("回执消息编号", 34),
                _Column("所答复的公文", 34),
                _Column("类型", 13),
                _Column("回执方", 22),
                _Column("时间", 24),
                _Column("原因", 24),
            ],
            [
                [str(r.index), r.message_id, r.answers, r.kind, r.answerer, format_utc(r.time), r.reason or ""]
                for r in node.receipts
            ],
        )
    return w.finish()


def _count(report: AuditReport) -> int:
    return len(report.findings) + report.findings_not_listed


def _node_row(report: AuditReport, n: NodeAudit) -> list[str]:
    head = n.latest_head
    failed = sum(1 for f in report.findings if f.node == n.node_id)
    return [
        n.node_id,
        f"{'节点目录' if n.kind == 'home' else '归档文件'} {n.label}",
        str(n.entries),
        f"{head.size} 条\n{head.time_text}" if head else "无",
        n.root.hex(),
        f"{len(n.documents)} / {len(n.receipts)} / {n.inbox}",
        "通过" if failed == 0 else f"{failed} 项未通过",
    ]


def _finding_row(f: Finding) -> list[str]:
    where = []
    if f.index is not None:
        where.append(f"第 {f.index} 行" if f.check in (Check.TREE_HEAD, Check.PEER_HEAD) else f"条目 {f.index}")
    if f.message_id:
        where.append(f.message_id)
    if f.recipient:
        where.append(f"收文机关 {f.recipient}")
    if f.peer:
        where.append(f"所见节点 {f.peer}")
    return [f.node, f.check.label, "\n".join(where) or "—", f.message]


def _capped_table(w: _Writer, columns: Sequence[_Column], rows: Sequence[Sequence[str]]) -> None:
    if not rows:
        w.paragraph("无。")
        return
    w.table(columns, rows[:MAX_TABLE_ROWS])
    if len(rows) > MAX_TABLE_ROWS:
        w.paragraph(
            f"仅列出前 {MAX_TABLE_ROWS} 行，共 {len(rows)} 行；完整清单见 gwx audit verify --json。", color=_GREY
        )


_DIGITS = "零一二三四五六七八九"


def _ordinal(n: int) -> str:
    """一 … 九十九, as section numbers are written."""
    if n < 10:
        return _DIGITS[n]
    tens, ones = divmod(n, 10)
    return ("" if tens == 1 else _DIGITS[tens]) + "十" + (_DIGITS[ones] if ones else "")


__all__ = ["MAX_TABLE_ROWS", "render_report"]
