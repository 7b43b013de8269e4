"""The 公文 (official document) as an immutable, self-checking value, after GB/T 9704-2012.

A ``Document`` that exists is a valid one: every constructor checks its element and raises ``DocumentError``
naming the element in Chinese and saying what is wrong. Elements are kept in the order the standard lists them.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from gwexchange.codes import is_department_code
from gwexchange.errors import DocumentError


class Classification(StrEnum):
    """密级, lowest to highest."""

    PUBLIC = "公开"
    INTERNAL = "内部"
    SECRET = "秘密"
    CONFIDENTIAL = "机密"
    TOP_SECRET = "绝密"

    @property
    def rank(self) -> int:
        return list(Classification).index(self)

    @property
    def is_classified(self) -> bool:
        """秘密 and above: a 涉密 document, which carries 份号 and may carry 保密期限."""
        return self.rank >= Classification.SECRET.rank


class Urgency(StrEnum):
    """紧急程度; an ordinary document has none."""

    EXTRA_URGENT = "特急"
    URGENT = "加急"


class DocKind(StrEnum):
    """文种: the fifteen kinds of the 党政机关公文处理工作条例."""

    RESOLUTION = "决议"
    DECISION = "决定"
    ORDER = "命令"
    COMMUNIQUE = "公报"
    ANNOUNCEMENT = "公告"
    PUBLIC_NOTICE = "通告"
    OPINION = "意见"
    NOTICE = "通知"
    BULLETIN = "通报"
    REPORT = "报告"
    REQUEST = "请示"
    REPLY = "批复"
    MOTION = "议案"
    LETTER = "函"
    MINUTES = "纪要"

    @property
    def is_upward(self) -> bool:
        """上行文, which must name its 签发人."""
        return self in (DocKind.REQUEST, DocKind.REPORT)


# Characters XML 1.0 cannot carry, plus line breaks: every text element here is one line.
_FORBIDDEN_CHARS = re.compile("[\x00-\x1f\x7f\ud800-\udfff\ufffe\uffff]")
# [0-9], not \d: \d also matches full-width and other Unicode digits, which the schema refuses.
_DOC_NUMBER = re.compile(r"(?P<code>[^〔〕\[\]［］()（）\s]+)〔(?P<year>[0-9]{4})〕(?P<serial>[0-9]+)号")
_SECRECY_PERIOD = re.compile(r"[1-9][0-9]{0,2}(年|个月)|长期")
_FULL_WIDTH_DIGITS = re.compile("[０-９]")
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_CN_NUMERAL = "[一二三四五六七八九十百]+"
_HEADING = re.compile(
    f"(?P<h1>{_CN_NUMERAL}、)|(?P<h2>（{_CN_NUMERAL}）)|(?P<h3>[0-9]+[.．、](?![0-9]))|(?P<h4>（[0-9]+）)"
)

MAX_TEXT = 10_000

MAX_FILE_NAME_BYTES = 200  # UTF-8: a file system's 255, less room for the scratch name written beside it
# Names Windows reserves for devices, with or without an extension (NUL.txt is the device too).
_RESERVED_NAME = re.compile(r"(CON|PRN|AUX|NUL|COM[0-9¹²³]|LPT[0-9¹²³])(\..*)?", re.IGNORECASE)
_NOT_IN_NAMES = '/\\:*?"<>|'
# Controls, format characters (bidi overrides, zero widths, tags), surrogates, line and paragraph separators.
# Unassigned code points pass: Python's Unicode tables lag the CJK extensions that rare names come from.
_NOT_IN_NAMES_CATEGORIES = frozenset(("Cc", "Cf", "Cs", "Zl", "Zp"))


def check_file_name(element: str, name: str) -> str:
    """A file name that is safe to create on any recipient's disk and reads as what it is.

    Refused: separators and the characters Windows forbids; controls (C0, C1) and format characters (the bidi
    overrides that make "报告\u202efdp.exe" show as "报告exe.pdf", zero widths); device names (CON, NUL.txt …);
    a leading "-" (an option to a command) or "." (hidden); a trailing "." or space (Windows drops it); more
    than ``MAX_FILE_NAME_BYTES`` bytes of UTF-8.
    """
    check_text(element, name, max_length=MAX_FILE_NAME_BYTES)
    if len(name.encode("utf-8")) > MAX_FILE_NAME_BYTES:
        raise DocumentError(element, f"“{name}”超过 {MAX_FILE_NAME_BYTES} 字节（UTF-8），请改用较短的文件名")
    for c in name:
        if c in _NOT_IN_NAMES:
            raise DocumentError(element, f"“{name}”含有文件名不允许的字符“{c}”")
        if unicodedata.category(c) in _NOT_IN_NAMES_CATEGORIES:  # private use (rare 生僻字) stays allowed
            raise DocumentError(element, f"含有控制或格式字符 U+{ord(c):04X}，不能用作文件名")
    if name.startswith(("-", ".")):
        raise DocumentError(element, f"“{name}”不能以“{name[0]}”开头")
    if name.endswith((".", " ")):
        raise DocumentError(element, f"“{name}”不能以点或空格结尾")
    if _RESERVED_NAME.fullmatch(name):
        raise DocumentError(element, f"“{name}”是系统保留的设备名，不能用作文件名")
    return name


def check_text(element: str, value: str, *, max_length: int = MAX_TEXT) -> str:
    """A one-line text element: not empty, no surrounding blanks, only characters XML can carry."""
    if not isinstance(value, str) or value != value.strip() or not value:
        raise DocumentError(
            element, "不能为空" if not isinstance(value, str) or not value.strip() else "首尾不能有空白字符"
        )
    if len(value) > max_length:
        raise DocumentError(element, f"长度为{len(value)}个字符，超过上限{max_length}")
    _check_characters(element, value)
    return value


def _check_characters(element: str, text: str) -> None:
    # Every forbidden character is unprintable, and isprintable() runs in C at memory speed: the regex, ten
    # times slower on long Chinese text, only runs to find and name the culprit.
    if text.isprintable():
        return
    bad = _FORBIDDEN_CHARS.search(text)
    if bad:
        raise DocumentError(element, f"含有不允许的字符 U+{ord(bad.group()):04X}（换行或控制字符）")


def check_lines(element: str, lines: tuple[str, ...]) -> None:
    """``check_text`` for many lines at once, with one scan for forbidden characters (the body can be long)."""
    if not lines:
        raise DocumentError(element, "不能为空")
    for line in lines:
        if not isinstance(line, str) or not line or line != line.strip() or len(line) > MAX_TEXT:
            check_text(element, line)  # says precisely what is wrong with this line
    _check_characters(element, "".join(lines))


def check_department_code(element: str, code: str) -> str:
    if not is_department_code(code):
        raise DocumentError(element, f"机关代码“{code}”格式不正确，应如 gd.gov.office（小写字母、数字、点分）")
    return code


def heading_level(text: str) -> int:
    """The GB/T 9704 structure level a paragraph opens with: 一、=1 （一）=2 1.=3 （1）=4, plain text 0."""
    m = _HEADING.match(text)
    return int(m.lastgroup[1:]) if m and m.lastgroup else 0


@dataclass(frozen=True, slots=True)
class DocNumber:
    """发文字号: 机关代字 + 〔年份〕 + 发文顺序号 + 号, e.g. 粤办发〔2026〕12号."""

    text: str

    def __post_init__(self) -> None:
        check_text("发文字号", self.text, max_length=64)
        if "第" in self.text:
            raise DocumentError("发文字号", f"“{self.text}”中不加“第”字")
        if _FULL_WIDTH_DIGITS.search(self.text):
            raise DocumentError("发文字号", f"“{self.text}”的年份和序号应使用半角阿拉伯数字（如 2026、12）")
        if "〔" not in self.text:
            raise DocumentError("发文字号", f"“{self.text}”的年份应用六角括号“〔〕”括入")
        m = _DOC_NUMBER.fullmatch(self.text)
        if not m:
            raise DocumentError("发文字号", f"“{self.text}”应为 机关代字〔年份〕序号号，如 粤办发〔2026〕12号")
        if m.group("serial").startswith("0"):
            raise DocumentError("发文字号", f"“{self.text}”的序号不编虚位（不加前导0）")

    @property
    def agency_code(self) -> str:
        return self._match().group("code")

    @property
    def year(self) -> int:
        return int(self._match().group("year"))

    @property
    def serial(self) -> int:
        return int(self._match().group("serial"))

    def _match(self) -> re.Match[str]:
        m = _DOC_NUMBER.fullmatch(self.text)
        if m is None:  # unreachable: checked at construction
            raise DocumentError("发文字号", self.text)
        return m


@dataclass(frozen=True, slots=True)
class Department:
    """A department named as issuer or recipient: its code in the directory and, when known, its name."""

    code: str
    name: str | None = None

    def __post_init__(self) -> None:
        check_department_code("机关", self.code)
        if self.name is not None:
            check_text("机关名称", self.name, max_length=200)

    @property
    def label(self) -> str:
        return self.name or self.code


@dataclass(frozen=True, slots=True)
class Attachment:
    """附件: the file travels beside the document; its size and SHA-256 are signed inside it."""

    title: str
    file_name: str
    media_type: str
    size: int
    sha256: str

    def __post_init__(self) -> None:
        check_text("附件名称", self.title, max_length=500)
        check_file_name("附件文件名", self.file_name)
        if not _MEDIA_TYPE.fullmatch(self.media_type):
            raise DocumentError("附件媒体类型", f"“{self.media_type}”不是有效的媒体类型，如 application/pdf")
        if not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 0:
            raise DocumentError("附件大小", f"“{self.size}”应为非负整数（字节）")
        if not _SHA256_HEX.fullmatch(self.sha256):
            raise DocumentError("附件摘要", "SHA-256 摘要应为64位小写十六进制")


def cn_date(d: dt.date) -> str:
    """A date as GB/T 9704 writes it (成文日期, 印发日期): Arabic numerals, no zero padding."""
    return f"{d.year}年{d.month}月{d.day}日"


@dataclass(frozen=True, slots=True)
class Document:
    """A 公文 with every GB/T 9704-2012 element, in the standard's order."""

    kind: DocKind  # 文种
    classification: Classification  # 密级
    issuers: tuple[Department, ...]  # 发文机关 (several: 联合发文, lead first)
    issuer_mark: str  # 发文机关标志
    doc_number: DocNumber  # 发文字号
    title: str  # 标题
    body: tuple[str, ...]  # 正文: paragraphs; headings open with 一、 （一） 1. （1） (see heading_level)
    signature_names: tuple[str, ...]  # 发文机关署名, one per issuer
    date: dt.date  # 成文日期
    copy_number: str | None = None  # 份号
    secrecy_period: str | None = None  # 保密期限
    urgency: Urgency | None = None  # 紧急程度
    signers: tuple[str, ...] = ()  # 签发人
    main_recipients: tuple[Department, ...] = ()  # 主送机关 (routing)
    main_recipients_line: str | None = None  # 主送机关 as printed, e.g. 各地级以上市人民政府：
    attachment_note: tuple[str, ...] = ()  # 附件说明: the attachments' names, in order
    attachments: tuple[Attachment, ...] = ()  # 附件 carried electronically
    note: str | None = None  # 附注
    copy_recipients: tuple[Department, ...] = ()  # 抄送机关
    printer: str | None = None  # 印发机关
    print_date: dt.date | None = None  # 印发日期

    def __post_init__(self) -> None:
        _check_enum("文种", self.kind, DocKind)
        _check_enum("密级", self.classification, Classification)
        if self.urgency is not None:
            _check_enum("紧急程度", self.urgency, Urgency)
        if self.copy_number is not None and not re.fullmatch(r"[0-9]{6}", self.copy_number):
            raise DocumentError("份号", f"“{self.copy_number}”应为6位阿拉伯数字，如 000123")
        if self.classification.is_classified and self.copy_number is None:
            raise DocumentError("份号", f"涉密公文（{self.classification}）必须标注份号")
        if self.secrecy_period is not None:
            if not self.classification.is_classified:
                raise DocumentError("保密期限", f"只有秘密及以上密级才标注保密期限，本件密级为{self.classification}")
            if not _SECRECY_PERIOD.fullmatch(self.secrecy_period):
                raise DocumentError("保密期限", f"“{self.secrecy_period}”应为如 1年、6个月 或 长期")
        if not self.issuers:
            raise DocumentError("发文机关", "至少要有一个发文机关")
        _check_unique("发文机关", [d.code for d in self.issuers])
        check_text("发文机关标志", self.issuer_mark, max_length=200)
        if not isinstance(self.doc_number, DocNumber):
            raise DocumentError("发文字号", "应为 DocNumber")
        if self.kind.is_upward and not self.signers:
            raise DocumentError("签发人", f"上行文（{self.kind}）必须标注签发人")
        for name in self.signers:
            check_text("签发人", name, max_length=50)
        check_text("标题", self.title, max_length=500)
        if not self.main_recipients and not self.copy_recipients:
            raise DocumentError("主送机关", "主送机关和抄送机关不能都为空")
        if self.main_recipients_line is not None:
            check_text("主送机关", self.main_recipients_line, max_length=1000)
        _check_unique("主送机关", [d.code for d in self.main_recipients + self.copy_recipients])
        check_lines("正文", self.body)
        for name in self.attachment_note:
            check_text("附件说明", name, max_length=500)
        if self.attachments and len(self.attachment_note) != len(self.attachments):
            raise DocumentError(
                "附件说明", f"列出{len(self.attachment_note)}个附件，但随文附件有{len(self.attachments)}个"
            )
        _check_unique("附件", [a.file_name for a in self.attachments])
        if len(self.signature_names) != len(self.issuers):
            raise DocumentError(
                "发文机关署名", f"有{len(self.signature_names)}个署名，应与发文机关数（{len(self.issuers)}）相同"
            )
        for name in self.signature_names:
            check_text("发文机关署名", name, max_length=200)
        for element, value in (("成文日期", self.date), ("印发日期", self.print_date)):
            if value is not None and (not isinstance(value, dt.date) or isinstance(value, dt.datetime)):
                raise DocumentError(element, f"应为日期（年月日，不含时间），实际为 {value!r}")
        if self.note is not None:
            check_text("附注", self.note, max_length=1000)
        if self.printer is not None:
            check_text("印发机关", self.printer, max_length=200)
        if (self.printer is None) != (self.print_date is None):
            raise DocumentError("印发机关", "印发机关和印发日期应同时标注或同时省略")
        if self.print_date is not None and self.print_date < self.date:
            raise DocumentError("印发日期", f"{self.print_date}早于成文日期{self.date}")

    @property
    def recipients(self) -> tuple[Department, ...]:
        """Everyone the document is addressed to: 主送 then 抄送."""
        return self.main_recipients + self.copy_recipients

    @property
    def is_joint(self) -> bool:
        """联合发文: issued by more than one department, each of which signs."""
        return len(self.issuers) > 1


def _check_enum(element: str, value: object, enum: type[StrEnum]) -> None:
    if not isinstance(value, enum):
        allowed = "、".join(m.value for m in enum)
        raise DocumentError(element, f"“{value}”不是有效值，应为：{allowed}")


def _check_unique(element: str, values: list[str]) -> None:
    seen: set[str] = set()
    for v in values:
        if v in seen:
            raise DocumentError(element, f"“{v}”重复出现")
        seen.add(v)


__all__ = [
    "MAX_FILE_NAME_BYTES",
    "MAX_TEXT",
    "Attachment",
    "Classification",
    "Department",
    "DocKind",
    "DocNumber",
    "Document",
    "Urgency",
    "check_department_code",
    "check_file_name",
    "check_lines",
    "check_text",
    "cn_date",
    "heading_level",
]
