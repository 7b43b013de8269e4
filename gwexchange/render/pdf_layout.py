"""A 公文 laid out as GB/T 9704-2012 prescribes: every element placed on its page.

Pure: a ``Document``, its verified signatures and the loaded fonts in, pages of positioned text, rules and seals
out; no file I/O, no clock. ``layout_pages`` places every element on the page (positions in points, PDF
coordinates, origin at the bottom left); ``pdf_paint`` draws the result, so the geometry can be tested alone.

The page (GB/T 9704-2012, 5 and 7): A4; text block 156 × 225 mm, top margin 37 mm, binding (left) margin 28 mm;
22 lines of 28 characters of 3号 (16 pt) text; everything sits on that line grid except the 版头, whose
发文机关标志 is placed 35 mm below the top of the text block, as the standard measures it.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from gwexchange.envelope.model import Attachment, Classification, Document, cn_date, heading_level
from gwexchange.envelope.signing import DocumentSignature
from gwexchange.errors import DocumentError
from gwexchange.render.fonts import Face, FontSet

MM = 72 / 25.4
PAGE_W, PAGE_H = 210 * MM, 297 * MM
LEFT, TOP = 28 * MM, 37 * MM
BLOCK_W, BLOCK_H = 156 * MM, 225 * MM
CHARS_PER_LINE, LINES_PER_PAGE = 28, 22
CELL = BLOCK_W / CHARS_PER_LINE  # one character of body text, 15.79 pt: 28 of them fill the line
LINE = BLOCK_H / LINES_PER_PAGE  # one line of the grid, 28.99 pt

SIZE_2 = 22.0  # 2号: the title
SIZE_3 = 16.0  # 3号: almost everything
SIZE_4 = 14.0  # 4号: the 版记 and page numbers
MARK_SIZE = 52.0  # 发文机关标志: the standard asks only for "醒目、美观、庄重"
MARK_TOP = 35 * MM  # from the top of the text block to the top of the 发文机关标志
SEAL_RADIUS = 21 * MM  # a 42 mm seal, the common size for a department's seal

Color = tuple[float, float, float]
BLACK: Color = (0.0, 0.0, 0.0)
RED: Color = (0.86, 0.0, 0.06)

# 禁则 (line-breaking rules): these never start a line, those never end one.
NO_LINE_START = set("，。、；：？！）》」』”’〕】…—％,.;:?!)]%·")
NO_LINE_END = set("（《「『“‘〔【([")
# Runs of Latin letters and digits are not broken (numbers, codes, file names).
_UNBREAKABLE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.,:%/_\-]*[A-Za-z0-9%]|[A-Za-z0-9]")


# --- what the layout produces --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextOp:
    """A run of text on one baseline. ``char_space`` is added after every character (PDF Tc)."""

    x: float
    y: float
    text: str
    face: Face
    size: float
    element: str  # the GB/T 9704 element it belongs to, in Chinese (for errors and tests)
    char_space: float = 0.0
    scale: float = 1.0  # horizontal scaling
    color: Color = BLACK


@dataclass(frozen=True, slots=True)
class RuleOp:
    """A horizontal line of ``width`` points from x1 to x2 at height y."""

    x1: float
    x2: float
    y: float
    width: float
    color: Color = BLACK


@dataclass(frozen=True, slots=True)
class SealOp:
    """The red seal mark of one department that signed, centred at (cx, cy)."""

    cx: float
    cy: float
    name: str
    department: str


Op = TextOp | RuleOp | SealOp


@dataclass(frozen=True, slots=True)
class Page:
    number: int
    ops: tuple[Op, ...]


# --- measuring and breaking text -----------------------------------------------------------------------------

Glyph = tuple[str, Face]  # one character and the face it is set in


def _base_space(size: float) -> float:
    """Body text sits on the 28-character grid; other sizes are set solid."""
    return CELL - size if size == SIZE_3 else 0.0


@dataclass(frozen=True, slots=True)
class _Line:
    """One line of a paragraph: its glyphs, where it starts, how it is aligned, and its character spacing."""

    glyphs: tuple[Glyph, ...]
    size: float
    indent: float
    char_space: float
    align: str = "left"  # left | centre | right
    element: str = "正文"


class _Typesetter:
    def __init__(self, fonts: FontSet) -> None:
        self.fonts = fonts

    def advance(self, glyph: Glyph, size: float) -> float:
        char, face = glyph
        font = self.fonts.font_for(face, char)
        return (font.advance(char) if font is not None else 1.0) * size

    def width(self, glyphs: Sequence[Glyph], size: float, char_space: float | None = None) -> float:
        """Width from the first character's left edge to the last one's right edge."""
        if not glyphs:
            return 0.0
        cs = _base_space(size) if char_space is None else char_space
        return sum(self.advance(g, size) for g in glyphs) + cs * (len(glyphs) - 1)

    def wrap(
        self,
        glyphs: Sequence[Glyph],
        size: float,
        width: float,
        *,
        first_indent: float = 0.0,
        indent: float = 0.0,
        element: str = "正文",
        justify: bool = True,
    ) -> list[_Line]:
        """Break a paragraph into lines that fill ``width`` (撑满版心), keeping the 禁则; the last is not justified."""
        base = _base_space(size)
        units = _units(glyphs)
        lines: list[_Line] = []
        current: list[list[Glyph]] = []
        used = 0.0

        def avail() -> float:
            return width - (first_indent if not lines else indent)

        def unit_width(unit: list[Glyph]) -> float:
            return sum(self.advance(g, size) + base for g in unit)

        def flush(final: bool) -> None:
            flat = tuple(g for unit in current for g in unit)
            start = first_indent if not lines else indent
            cs = base
            if justify and not final and len(flat) > 1:
                stretched = (avail() - sum(self.advance(g, size) for g in flat)) / (len(flat) - 1)
                # A line with a long unbreakable run left over is not stretched out of shape.
                if stretched <= base + size / 2:
                    cs = stretched
            lines.append(_Line(flat, size, start, cs, element=element))

        for unit in units:
            w = unit_width(unit)
            if w - base > width - indent and len(unit) > 1:
                # A run longer than a whole line (a digest, a URL) is broken where the line ends.
                for g in unit:
                    gw = self.advance(g, size) + base
                    if current and used + gw - base > avail():
                        flush(final=False)
                        current, used = [], 0.0
                    current.append([g])
                    used += gw
                continue
            if current and used + w - base > avail():
                if unit[0][0] in NO_LINE_START and len(unit) == 1 and used + w - base <= avail() + size:
                    # 推入: a closing mark is squeezed into the line rather than open the next one.
                    current.append(unit)
                    used += w
                    continue
                carried: list[list[Glyph]] = []
                while len(current) > 1 and current[-1][-1][0] in NO_LINE_END:
                    carried.insert(0, current.pop())  # 推出: an opening mark goes down with what it opens
                flush(final=False)
                current = carried
                used = sum(unit_width(u) for u in current)
            current.append(unit)
            used += w
        if current or not lines:
            flush(final=True)
        return lines


def _units(glyphs: Sequence[Glyph]) -> list[list[Glyph]]:
    """Split into the units a line may break between: one CJK character, or a run of Latin letters and digits."""
    text = "".join(c for c, _ in glyphs)
    units: list[list[Glyph]] = []
    i = 0
    while i < len(glyphs):
        m = _UNBREAKABLE.match(text, i)
        end = m.end() if m else i + 1
        units.append(list(glyphs[i:end]))
        i = end
    return units


def _glyphs(text: str, face: Face) -> list[Glyph]:
    return [(c, face) for c in text]


# --- the flow of the text block ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Blank:
    """An empty line of the grid; dropped at the top of a page."""


@dataclass(frozen=True, slots=True)
class _NewPage:
    pass


@dataclass(frozen=True, slots=True)
class _Block:
    """Lines that stay together (the signature and seals); ``keep`` lines before it move with it to a new page."""

    lines: int
    draw: Callable[[int], list[Op]]  # band of its first line → what it draws
    keep: int = 2


_Item = _Line | _Blank | _NewPage | _Block


def _baseline(band: int, size: float) -> float:
    """The baseline that centres text of ``size`` in grid line ``band`` (0 = the first line of the text block)."""
    # An ideograph's em box spans 0.12 em below the baseline to 0.88 em above it.
    return PAGE_H - TOP - (band + 0.5) * LINE - 0.38 * size


def _line_ops(ts: _Typesetter, line: _Line, band: int) -> list[Op]:
    y = _baseline(band, line.size)
    width = ts.width(line.glyphs, line.size, line.char_space)
    if line.align == "centre":
        x = LEFT + (BLOCK_W - width) / 2
    elif line.align == "right":
        x = LEFT + BLOCK_W - line.indent - width
    else:
        x = LEFT + line.indent
    ops: list[Op] = []
    # One run per face; each run starts where the previous one's characters (and their spacing) ended.
    for face, run in _runs(line.glyphs):
        ops.append(TextOp(x, y, "".join(run), face, line.size, line.element, char_space=line.char_space))
        x += sum(ts.advance((c, face), line.size) + line.char_space for c in run)
    return ops


def _runs(glyphs: Sequence[Glyph]) -> Iterator[tuple[Face, list[str]]]:
    run: list[str] = []
    face: Face | None = None
    for c, f in glyphs:
        if f is not face and run and face is not None:
            yield face, run
            run = []
        face = f
        run.append(c)
    if run and face is not None:
        yield face, run


@dataclass
class _Flow:
    """Places items on the line grid page by page, and keeps the signature with the end of the text."""

    ts: _Typesetter
    pages: list[list[tuple[int, _Item]]] = field(default_factory=lambda: [[]])
    band: int = 0

    def new_page(self) -> None:
        self.pages.append([])
        self.band = 0

    def add(self, item: _Item) -> None:
        if isinstance(item, _NewPage):
            self.new_page()
        elif isinstance(item, _Blank):
            if self.band > 0:
                self.band += 1
        elif isinstance(item, _Line):
            if self.band >= LINES_PER_PAGE:
                self.new_page()
            self.pages[-1].append((self.band, item))
            self.band += 1
        else:
            self._add_block(item)

    def _add_block(self, block: _Block) -> None:
        if self.band + block.lines > LINES_PER_PAGE:
            # Never a seal alone on a page: the last lines of the text go over with it.
            page = self.pages[-1]
            tail = [p for p in page if isinstance(p[1], _Line)][-block.keep :] if block.keep else []
            if len(tail) == len([p for p in page if isinstance(p[1], _Line)]):
                tail = []  # the page would be left empty: keep it, and the block goes over alone
            for placed in tail:
                page.remove(placed)
            self.new_page()
            for _, line in tail:
                self.add(line)
        self.pages[-1].append((self.band, block))
        self.band += block.lines

    def free_lines(self) -> int:
        return LINES_PER_PAGE - self.band


# --- the layout ----------------------------------------------------------------------------------------------


def layout_pages(
    document: Document,
    signatures: Sequence[DocumentSignature],
    fonts: FontSet,
    *,
    attachments: Mapping[str, bytes] | None = None,
) -> tuple[Page, ...]:
    """Place every element of ``document`` on its pages.

    ``signatures`` are the verified signatures: each issuing department that signed gets its seal mark over its
    署名. ``attachments`` (file name → bytes) are the attachment files at hand; a text attachment among them is
    printed on its attachment page, any other is described there.
    """
    ts = _Typesetter(fonts)
    header, first_band = _header(ts, document)
    flow = _Flow(ts, band=first_band)
    for item in _main_text(ts, document, signatures):
        flow.add(item)
    for i, attachment in enumerate(document.attachments, 1):
        numbered = len(document.attachments) > 1
        for item in _attachment_page(
            ts, attachment, i if numbered else None, (attachments or {}).get(attachment.file_name)
        ):
            flow.add(item)
    record = _record(ts, document)
    if record is not None:
        lines, draw = record
        if flow.free_lines() < lines:
            flow.new_page()
        flow.pages[-1].append((LINES_PER_PAGE - lines, _Block(lines, draw, keep=0)))
    pages: list[Page] = []
    for index, placed in enumerate(flow.pages):
        ops: list[Op] = list(header) if index == 0 else []
        for band, item in placed:
            if isinstance(item, _Line):
                ops.extend(_line_ops(ts, item, band))
            elif isinstance(item, _Block):
                ops.extend(item.draw(band))
        ops.extend(_page_number(ts, index + 1))
        pages.append(Page(index + 1, tuple(ops)))
    _check_glyphs(fonts, pages)
    return tuple(pages)


def _header(ts: _Typesetter, doc: Document) -> tuple[list[Op], int]:
    """The 版头: 份号, 密级, 紧急程度, 发文机关标志, 发文字号 (and 签发人), the red line. Returns the ops and the
    grid line where the title starts."""
    ops: list[Op] = []
    marks: list[tuple[str, Face, str]] = []
    if doc.copy_number:
        marks.append((doc.copy_number, Face.FANGSONG, "份号"))
    if doc.classification is not Classification.PUBLIC:
        secrecy = f"{doc.classification}★{doc.secrecy_period}" if doc.secrecy_period else doc.classification.value
        marks.append((secrecy, Face.HEITI, "密级和保密期限"))
    if doc.urgency:
        marks.append((doc.urgency.value, Face.HEITI, "紧急程度"))
    for band, (text, face, element) in enumerate(marks):
        ops.append(TextOp(LEFT, _baseline(band, SIZE_3), text, face, SIZE_3, element, char_space=_base_space(SIZE_3)))

    mark_ops, mark_bottom = _issuer_mark(ts, doc)
    ops.extend(mark_ops)
    band = math.ceil(mark_bottom / LINE) + 2  # 发文字号 two lines below the 发文机关标志
    number = _glyphs(doc.doc_number.text, Face.FANGSONG)
    if doc.kind.is_upward:
        signer_lines = _signer_lines(ts, doc)
        for i, line in enumerate(signer_lines):
            ops.extend(_line_ops(ts, line, band + i))
        band += len(signer_lines) - 1
        ops.extend(_line_ops(ts, _Line(tuple(number), SIZE_3, CELL, _base_space(SIZE_3), element="发文字号"), band))
    else:
        ops.extend(
            _line_ops(ts, _Line(tuple(number), SIZE_3, 0, _base_space(SIZE_3), "centre", element="发文字号"), band)
        )
    # The red line: 4 mm under the 发文字号, as wide as the text block.
    red_y = _baseline(band, SIZE_3) - 0.12 * SIZE_3 - 4 * MM
    ops.append(RuleOp(LEFT, LEFT + BLOCK_W, red_y, 0.8 * MM, RED))
    return ops, band + 3


def _issuer_mark(ts: _Typesetter, doc: Document) -> tuple[list[Op], float]:
    """The red 发文机关标志, centred; a joint mark stacks the names with 文件 beside them. Returns the ops and
    the distance from the top of the text block to its bottom."""
    mark = doc.issuer_mark
    names = mark.removesuffix("文件").split()
    face = Face.XIAOBIAOSONG
    top = PAGE_H - TOP - MARK_TOP
    if len(names) > 1 and mark.endswith("文件"):
        size = MARK_SIZE * 0.62
        gap = size * 0.25
        suffix_size = min(MARK_SIZE, len(names) * size + (len(names) - 1) * gap)
        widest = max(ts.width(_glyphs(n, face), size, 0) for n in names)
        suffix_w = ts.width(_glyphs("文件", face), suffix_size, 0)
        scale = min(1.0, (BLOCK_W - size / 2) / (widest + size / 2 + suffix_w))
        x = LEFT + (BLOCK_W - scale * (widest + size / 2 + suffix_w)) / 2
        ops: list[Op] = []
        y = top
        for name in names:
            y -= 0.88 * size
            name_w = ts.width(_glyphs(name, face), size, 0) * scale
            # Each name is spread over the width of the longest one, as printers set stacked names.
            spread = (widest * scale - name_w) / max(1, len(name) - 1)
            ops.append(
                TextOp(x, y, name, face, size, "发文机关标志", char_space=spread / scale, scale=scale, color=RED)
            )
            y -= 0.12 * size + gap
        height = top - (y + gap)
        suffix_y = top - height / 2 - 0.38 * suffix_size
        ops.append(
            TextOp(
                x + scale * (widest + size / 2),
                suffix_y,
                "文件",
                face,
                suffix_size,
                "发文机关标志",
                scale=scale,
                color=RED,
            )
        )
        return ops, MARK_TOP + height
    width = ts.width(_glyphs(mark, face), MARK_SIZE, 0)
    size, scale = MARK_SIZE, 1.0
    if width > BLOCK_W:
        # Narrow the letters first (as printers do), then, for a very long name, make them smaller too.
        scale = max(0.6, BLOCK_W / width)
        size = MARK_SIZE * min(1.0, BLOCK_W / (width * scale))
    x = LEFT + (BLOCK_W - ts.width(_glyphs(mark, face), size, 0) * scale) / 2
    return [TextOp(x, top - 0.88 * size, mark, face, size, "发文机关标志", scale=scale, color=RED)], MARK_TOP + size


def _signer_lines(ts: _Typesetter, doc: Document) -> list[_Line]:
    """签发人 of an upward document: 居右空一字, two names a line, later lines aligned with the first name."""
    label = _glyphs("签发人：", Face.FANGSONG)
    rows = [doc.signers[i : i + 2] for i in range(0, len(doc.signers), 2)]
    row_glyphs = [
        [g for j, name in enumerate(row) for g in ([("\u3000", Face.KAITI)] if j else []) + _glyphs(name, Face.KAITI)]
        for row in rows
    ]
    label_w = ts.width(label, SIZE_3) + CELL
    widest = max(ts.width(r, SIZE_3) for r in row_glyphs)
    start = BLOCK_W - CELL - widest - label_w
    lines = [_Line(tuple(label + row_glyphs[0]), SIZE_3, start, _base_space(SIZE_3), element="签发人")]
    lines += [_Line(tuple(r), SIZE_3, start + label_w, _base_space(SIZE_3), element="签发人") for r in row_glyphs[1:]]
    return lines


def _main_text(ts: _Typesetter, doc: Document, signatures: Sequence[DocumentSignature]) -> Iterator[_Item]:
    """标题, 主送机关, 正文, 附件说明, 署名 with seals and 成文日期, 附注 — in the order of the standard."""
    yield from _title_lines(ts, doc.title)
    yield _Blank()
    recipients = doc.main_recipients_line or "、".join(d.label for d in doc.main_recipients)
    if recipients:
        text = recipients.rstrip("：:") + "："
        yield from ts.wrap(_glyphs(text, Face.FANGSONG), SIZE_3, BLOCK_W, element="主送机关")
    for paragraph in doc.body:
        yield from ts.wrap(_paragraph_glyphs(paragraph), SIZE_3, BLOCK_W, first_indent=2 * CELL)
    if doc.attachment_note:
        yield _Blank()
        yield from _attachment_note(ts, doc.attachment_note)
    yield _signature_block(ts, doc, signatures)
    if doc.note:
        yield from ts.wrap(
            _glyphs(f"（{doc.note}）", Face.FANGSONG), SIZE_3, BLOCK_W, first_indent=2 * CELL, element="附注"
        )


def _paragraph_glyphs(text: str) -> list[Glyph]:
    """一、 headings in 黑体 and （一） in 楷体 — the heading sentence only, when text follows it on the line."""
    level = heading_level(text)
    face = {1: Face.HEITI, 2: Face.KAITI}.get(level)
    if face is None:
        return _glyphs(text, Face.FANGSONG)
    end = text.find("。")
    cut = len(text) if end < 0 or end == len(text) - 1 else end + 1
    return _glyphs(text[:cut], face) + _glyphs(text[cut:], Face.FANGSONG)


def _title_lines(ts: _Typesetter, title: str) -> list[_Line]:
    """The title in 2号 小标宋, centred, broken into balanced lines at natural places (梯形 or 菱形)."""
    face = Face.XIAOBIAOSONG
    glyphs = _glyphs(title, face)
    total = ts.width(glyphs, SIZE_2)
    if total <= BLOCK_W:
        parts = [title]
    else:
        count = math.ceil(total / BLOCK_W)
        parts = _balanced_breaks(ts, title, count) if count <= 4 else []
        if not parts:
            parts = ["".join(c for c, _ in line.glyphs) for line in ts.wrap(glyphs, SIZE_2, BLOCK_W, justify=False)]
    return [_Line(tuple(_glyphs(p, face)), SIZE_2, 0, 0.0, "centre", element="标题") for p in parts]


def _balanced_breaks(ts: _Typesetter, title: str, count: int) -> list[str]:
    """Break ``title`` into ``count`` lines of even width, preferring breaks around 关于, 《》 and the 文种."""
    n = len(title)
    widths = [ts.advance((c, Face.XIAOBIAOSONG), SIZE_2) for c in title]
    prefix = [0.0]
    for w in widths:
        prefix.append(prefix[-1] + w)
    target = prefix[-1] / count

    def bonus(i: int) -> float:
        # Without a dictionary, words are only known to end where a title's usual parts meet.
        before, after = title[:i], title[i:]
        if title[i - 1].isascii() and title[i].isascii() and title[i - 1].isalnum() and title[i].isalnum():
            return -100.0
        if after.startswith(("《", "关于")) or before.endswith(("》", "关于")):
            return 5.0
        if _TITLE_VERB.search(before):
            return 4.0
        if (after.startswith("的") and len(after) <= 5) or before.endswith(("、", " ", "和", "及")):
            return 3.0
        return 0.0

    def cost(i: int, j: int) -> float | None:
        w = prefix[j] - prefix[i]
        if w > BLOCK_W or title[i] in NO_LINE_START or title[j - 1] in NO_LINE_END:
            return None
        return 0.15 * ((w - target) / SIZE_2) ** 2

    inf = float("inf")
    best = [[inf] * (n + 1) for _ in range(count + 1)]
    back = [[0] * (n + 1) for _ in range(count + 1)]
    best[0][0] = 0.0
    for k in range(1, count + 1):
        for j in range(1, n + 1):
            for i in range(k - 1, j):
                if best[k - 1][i] == inf:
                    continue
                c = cost(i, j)
                if c is None:
                    continue
                total = best[k - 1][i] + c - (bonus(j) if j < n else 0.0)
                if total < best[k][j]:
                    best[k][j], back[k][j] = total, i
    if best[count][n] == inf:
        return []
    cuts = [n]
    for k in range(count, 0, -1):
        cuts.append(back[k][cuts[-1]])
    cuts.reverse()
    return [title[a:b].strip() for a, b in itertools.pairwise(cuts)]


# Verbs that often follow 关于 in a title: a line may end after them without cutting a word.
_TITLE_VERB = re.compile(
    "(印发|转发|批转|申请|开展|做好|加强|推进|实施|调整|成立|召开|请求|商请|提供|建立|完善|规范|下达|公布)$"
)


def _attachment_note(ts: _Typesetter, names: Sequence[str]) -> Iterator[_Line]:
    """附件说明: 左空二字 "附件：", then the names, numbered when more than one, wrapped under their first char."""
    label = _glyphs("附件：", Face.FANGSONG)
    label_w = 2 * CELL + ts.width(label, SIZE_3) + _base_space(SIZE_3)
    for i, name in enumerate(names, 1):
        number = _glyphs(f"{i}." if len(names) > 1 else "", Face.FANGSONG)
        number_w = ts.width(number, SIZE_3) + _base_space(SIZE_3) if number else 0.0
        lines = ts.wrap(
            _glyphs(name, Face.FANGSONG),
            SIZE_3,
            BLOCK_W,
            first_indent=label_w + number_w,
            indent=label_w + number_w,
            element="附件说明",
        )
        first = lines[0]
        lead = label + number if i == 1 else number
        start = 2 * CELL if i == 1 else label_w
        yield _Line(tuple(lead) + first.glyphs, SIZE_3, start, first.char_space, element="附件说明")
        yield from lines[1:]


def _signature_block(ts: _Typesetter, doc: Document, signatures: Sequence[DocumentSignature]) -> _Block:
    """发文机关署名 and 成文日期 with a seal over each department that signed (GB/T 9704 7.3.5.1).

    The date is 右空四字; each 署名 is centred under its seal; the last seal sits over the last 署名 and the date,
    both a little below its centre. Seals are set in rows of at most three, none touching another.
    """
    date_text = _glyphs(cn_date(doc.date), Face.FANGSONG)
    date_w = ts.width(date_text, SIZE_3)
    date_x = BLOCK_W - 4 * CELL - date_w
    last_cx = date_x + date_w / 2
    # Seals neither touch nor cut each other, and the 署名 under them keep two characters apart.
    widest = max(ts.width(_glyphs(n, Face.FANGSONG), SIZE_3) for n in doc.signature_names)
    step = max(2 * SEAL_RADIUS + 4 * MM, widest + 2 * CELL)
    per_row = max(1, min(3, int((last_cx + SEAL_RADIUS) // step) + 1))
    count = len(doc.issuers)
    rows = math.ceil(count / per_row)
    row_lines = math.ceil((2 * SEAL_RADIUS + 2 * MM) / LINE)
    signed = {s.department: s for s in signatures}
    # Two blank lines (the seal's upper half), then one line per row of 署名, then the date.
    lines = 2 + (rows - 1) * row_lines + 2

    def draw(first_band: int) -> list[Op]:
        ops: list[Op] = []
        name_band = first_band + 2
        for index, issuer in enumerate(doc.issuers):
            row = index // per_row
            in_row = min(per_row, count - row * per_row)
            position = index - row * per_row
            band = name_band + row * row_lines
            cx = LEFT + last_cx - (in_row - 1 - position) * step
            name = _glyphs(doc.signature_names[index], Face.FANGSONG)
            y = _baseline(band, SIZE_3)
            name_w = ts.width(name, SIZE_3)
            ops.append(
                TextOp(
                    cx - name_w / 2,
                    y,
                    doc.signature_names[index],
                    Face.FANGSONG,
                    SIZE_3,
                    "发文机关署名",
                    char_space=_base_space(SIZE_3),
                )
            )
            signature = signed.get(issuer.code)
            if signature is not None:
                # The seal's centre at the top of the 署名 line: 署名 and date sit just below its centre.
                ops.append(SealOp(cx, PAGE_H - TOP - band * LINE - 0.1 * LINE, signature.signer_name, issuer.code))
        date_band = name_band + (rows - 1) * row_lines + 1
        ops.append(
            TextOp(
                LEFT + date_x,
                _baseline(date_band, SIZE_3),
                cn_date(doc.date),
                Face.FANGSONG,
                SIZE_3,
                "成文日期",
                char_space=_base_space(SIZE_3),
            )
        )
        # Seals are drawn after the text so that they lie over it, as a seal does.
        ops.sort(key=lambda op: isinstance(op, SealOp))
        return ops

    return _Block(lines, draw)


def _attachment_page(
    ts: _Typesetter, attachment: Attachment, number: int | None, data: bytes | None
) -> Iterator[_Item]:
    """附件 on a page of its own: "附件N" in 黑体 on the first line, its title centred on the third."""
    yield _NewPage()
    yield _Line(tuple(_glyphs(f"附件{number or ''}", Face.HEITI)), SIZE_3, 0, _base_space(SIZE_3), element="附件")
    yield _Line((), SIZE_3, 0, 0.0, element="附件")
    yield from (
        _Line(line.glyphs, SIZE_2, 0, 0.0, "centre", element="附件") for line in _title_lines(ts, attachment.title)
    )
    yield _Blank()
    facts = [
        f"文件名：{attachment.file_name}",
        f"类型：{attachment.media_type}",
        f"大小：{attachment.size}字节",
        f"SHA-256：{attachment.sha256}",
        "本附件随文以电子文件形式交换，其大小和摘要包含在发文机关的签名之内。",
    ]
    for fact in facts:
        yield from ts.wrap(_glyphs(fact, Face.FANGSONG), SIZE_3, BLOCK_W, first_indent=2 * CELL, element="附件")
    text = _printable_text(attachment, data)
    if text is not None:
        yield _Blank()
        yield from ts.wrap(_glyphs("内容：", Face.HEITI), SIZE_3, BLOCK_W, element="附件")
        for row in text:
            yield from ts.wrap(_glyphs(row, Face.FANGSONG), SIZE_3, BLOCK_W, element="附件")


MAX_PRINTED_ATTACHMENT = 64 * 1024


def _printable_text(attachment: Attachment, data: bytes | None) -> list[str] | None:
    """The lines of a small UTF-8 text attachment (text/plain, text/csv, …), to print; None for anything else."""
    if data is None or not attachment.media_type.startswith("text/") or len(data) > MAX_PRINTED_ATTACHMENT:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    rows = [" ".join(row.split()) for row in text.splitlines()]
    return [row for row in rows if row] or None


def _record(ts: _Typesetter, doc: Document) -> tuple[int, Callable[[int], list[Op]]] | None:
    """The 版记 at the foot of the last page: 抄送机关, then 印发机关 and 印发日期, between separator lines."""
    indent = SIZE_4  # 左右各空一字 (of 4号)
    rows: list[_Line] = []
    if doc.copy_recipients:
        label = _glyphs("抄送：", Face.FANGSONG)
        names = _glyphs("，".join(d.label for d in doc.copy_recipients) + "。", Face.FANGSONG)
        label_w = ts.width(label, SIZE_4) + _base_space(SIZE_4)
        wrapped = ts.wrap(
            names, SIZE_4, BLOCK_W - indent, first_indent=indent + label_w, indent=indent + label_w, element="抄送机关"
        )
        rows.append(_Line(tuple(label) + wrapped[0].glyphs, SIZE_4, indent, wrapped[0].char_space, element="抄送机关"))
        rows.extend(wrapped[1:])
    printed = doc.printer is not None and doc.print_date is not None
    if not rows and not printed:
        return None
    lines = len(rows) + (1 if printed else 0)

    def draw(first_band: int) -> list[Op]:
        top = PAGE_H - TOP - first_band * LINE
        bottom = PAGE_H - TOP - BLOCK_H
        ops: list[Op] = [RuleOp(LEFT, LEFT + BLOCK_W, top, 0.35 * MM)]
        for i, row in enumerate(rows):
            ops.extend(_line_ops(ts, row, first_band + i))
        if printed and doc.printer and doc.print_date:
            band = first_band + len(rows)
            if rows:
                ops.append(RuleOp(LEFT, LEFT + BLOCK_W, PAGE_H - TOP - band * LINE, 0.25 * MM))
            y = _baseline(band, SIZE_4)
            when = cn_date(doc.print_date) + "印发"
            ops.append(TextOp(LEFT + indent, y, doc.printer, Face.FANGSONG, SIZE_4, "印发机关"))
            when_w = ts.width(_glyphs(when, Face.FANGSONG), SIZE_4)
            ops.append(TextOp(LEFT + BLOCK_W - indent - when_w, y, when, Face.FANGSONG, SIZE_4, "印发日期"))
        ops.append(RuleOp(LEFT, LEFT + BLOCK_W, bottom, 0.35 * MM))
        return ops

    return lines, draw


def _page_number(ts: _Typesetter, number: int) -> list[Op]:
    """Page numbers "— 1 —" in 4号 under the text block: odd pages 居右空一字, even pages 居左空一字."""
    text = f"— {number} —"
    width = ts.width(_glyphs(text, Face.FANGSONG), SIZE_4)
    x = LEFT + BLOCK_W - SIZE_4 - width if number % 2 else LEFT + SIZE_4
    # The dashes (at about a third of the em above the _baseline) 7 mm under the text block.
    y = PAGE_H - TOP - BLOCK_H - 7 * MM - 0.33 * SIZE_4
    return [TextOp(x, y, text, Face.FANGSONG, SIZE_4, "页码")]


def _check_glyphs(fonts: FontSet, pages: Sequence[Page]) -> None:
    """Refuse to print a character no font can draw: a blank box in a filed document is not acceptable."""
    for page in pages:
        for op in page.ops:
            if isinstance(op, TextOp):
                missing = fonts.missing(op.face, op.text)
                if missing:
                    codes = "、".join(f"U+{ord(c):04X}" for c in missing)
                    raise DocumentError(op.element, f"字符“{missing}”（{codes}）在已安装的字体中没有字形，无法排印")
            elif isinstance(op, SealOp):
                missing = fonts.missing(Face.XIAOBIAOSONG, op.name)
                if missing:
                    raise DocumentError("印章", f"字符“{missing}”在已安装的字体中没有字形，无法排印")


__all__ = [
    "BLACK",
    "CELL",
    "LINE",
    "MARK_SIZE",
    "MARK_TOP",
    "MAX_PRINTED_ATTACHMENT",
    "MM",
    "NO_LINE_END",
    "NO_LINE_START",
    "RED",
    "SEAL_RADIUS",
    "SIZE_2",
    "SIZE_3",
    "SIZE_4",
    "Color",
    "Glyph",
    "Op",
    "Page",
    "RuleOp",
    "SealOp",
    "TextOp",
    "layout_pages",
]
