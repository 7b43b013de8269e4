"""A clerk's description of a document — a TOML file plus a UTF-8 body file — turned into a ``Document``.

The format is the one of ``examples/*.toml``: the GB/T 9704 elements as keys, recipients by department code, the
body and attachments as file names relative to the TOML file. File access is the caller's: it passes ``read``,
which returns the bytes of the named body file, and ``measure``, which returns the size and SHA-256 of a named
attachment (streamed: attachments can be hundreds of megabytes), so this module stays free of I/O.
"""

from __future__ import annotations

import mimetypes
import re
import tomllib
from collections.abc import Callable, Mapping
from datetime import date, datetime
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from gwexchange.envelope.model import (
    Attachment,
    Classification,
    Department,
    DocKind,
    DocNumber,
    Document,
    Urgency,
)
from gwexchange.errors import ConfigError, DocumentError
from gwexchange.files import measure_file

# TOML key → the Chinese element it describes.
KEYS = {
    "kind": "文种",
    "copy_number": "份号",
    "classification": "密级",
    "secrecy_period": "保密期限",
    "urgency": "紧急程度",
    "issuer": "发文机关",
    "issuer_mark": "发文机关标志",
    "doc_number": "发文字号",
    "signer": "签发人",
    "title": "标题",
    "to": "主送机关",
    "to_line": "主送机关",
    "cc": "抄送机关",
    "body": "正文",
    "attachments": "附件",
    "signature_name": "发文机关署名",
    "date": "成文日期",
    "note": "附注",
    "printer": "印发机关",
    "print_date": "印发日期",
}
REQUIRED = ("kind", "classification", "issuer", "issuer_mark", "doc_number", "title", "body", "signature_name", "date")
_ATTACHMENT_NOTE = re.compile(r"附件[：:]\s*")
_NOTE_ITEM = re.compile(r"([0-9]+)[.．、]\s*")
_SALUTATION_MAX = 200

Reader = Callable[[str], bytes]
Measurer = Callable[[str], tuple[int, str]]
E = TypeVar("E", DocKind, Classification, Urgency)


def load_description(
    toml_text: str, read: Reader, measure: Measurer, departments: Mapping[str, str] | None = None
) -> Document:
    """Build the document a clerk described. ``departments`` maps codes to names where they are known."""
    try:
        spec = tomllib.loads(toml_text)
    except tomllib.TOMLDecodeError as e:
        raise DocumentError("描述文件", f"不是有效的 TOML：{e}") from e
    unknown = sorted(set(spec) - set(KEYS))
    if unknown:
        raise DocumentError("描述文件", f"未知的字段 {', '.join(unknown)}；可用字段：{', '.join(KEYS)}")
    for key in REQUIRED:
        if key not in spec:
            raise DocumentError(KEYS[key], f"缺少必填字段 {key}")
    names = departments or {}

    def dept(key: str, code: object) -> Department:
        if not isinstance(code, str):
            raise DocumentError(KEYS[key], f"机关代码应为字符串，实际为 {code!r}")
        return Department(code=code, name=names.get(code))

    body_name = _string(spec, "body")
    salutation, paragraphs, note_items = split_body(_decode_body(read(body_name), body_name))
    attachments = tuple(_attachment(entry, measure) for entry in _list(spec, "attachments"))
    if attachments and note_items and len(note_items) != len(attachments):
        raise DocumentError("附件说明", f"正文列出{len(note_items)}个附件，描述文件给出{len(attachments)}个附件文件")
    if attachments and not note_items:
        note_items = tuple(a.title for a in attachments)
    elif attachments:
        attachments = tuple(_retitle(a, t) for a, t in zip(attachments, note_items, strict=True))

    return Document(
        kind=_enum(spec, "kind", DocKind),
        copy_number=_optional(spec, "copy_number"),
        classification=_enum(spec, "classification", Classification),
        secrecy_period=_optional(spec, "secrecy_period"),
        urgency=_enum(spec, "urgency", Urgency) if "urgency" in spec else None,
        issuers=tuple(dept("issuer", c) for c in _list(spec, "issuer")),
        issuer_mark=_string(spec, "issuer_mark"),
        doc_number=DocNumber(_string(spec, "doc_number")),
        signers=tuple(_str_items(spec, "signer")),
        title=_string(spec, "title"),
        main_recipients=tuple(dept("to", c) for c in _list(spec, "to")),
        main_recipients_line=_optional(spec, "to_line") or salutation,
        body=tuple(paragraphs),
        attachment_note=note_items,
        attachments=attachments,
        signature_names=tuple(_str_items(spec, "signature_name")),
        date=_date(spec, "date"),
        note=_optional(spec, "note"),
        copy_recipients=tuple(dept("cc", c) for c in _list(spec, "cc")),
        printer=_optional(spec, "printer"),
        print_date=_date(spec, "print_date") if "print_date" in spec else None,
    )


def split_body(text: str) -> tuple[str | None, list[str], tuple[str, ...]]:
    """Split a body file into (主送机关 line, paragraphs, 附件说明 items).

    Each non-blank line is a paragraph. A first line ending in a colon is the 主送机关 as printed. A paragraph
    opening with 附件： starts the 附件说明, which runs to the end of the body, one attachment a line.
    """
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    salutation = None
    if lines and lines[0].endswith(("：", ":")) and len(lines[0]) <= _SALUTATION_MAX and "。" not in lines[0]:
        salutation = lines.pop(0)[:-1].strip() or None
    items: list[str] = []
    for i, line in enumerate(lines):
        opening = _ATTACHMENT_NOTE.match(line)
        if opening:
            items = [_NOTE_ITEM.sub("", rest, count=1).strip() for rest in [line[opening.end() :], *lines[i + 1 :]]]
            numbered = [bool(_NOTE_ITEM.match(rest)) for rest in [line[opening.end() :], *lines[i + 1 :]]]
            if len(items) > 1 and not all(numbered):
                raise DocumentError("附件说明", "多个附件应逐行编号（1. 2. …），且附件说明应位于正文之后")
            lines = lines[:i]
            break
    if not lines:
        raise DocumentError("正文", "正文不能为空")
    return salutation, lines, tuple(item for item in items if item)


def _decode_body(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DocumentError("正文", f"正文文件 {name} 不是 UTF-8 编码（第{e.start}字节）") from e


def _attachment(entry: object, measure: Measurer) -> Attachment:
    if isinstance(entry, str):
        entry = {"file": entry}
    if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
        raise DocumentError("附件", f"每个附件应为文件路径或 {{file = …, title = …}}，实际为 {entry!r}")
    path = entry["file"]
    size, sha256 = measure(path)
    name = PurePosixPath(path.replace("\\", "/")).name
    media_type = entry.get("media_type") or mimetypes.guess_type(name)[0] or "application/octet-stream"
    return Attachment(
        title=str(entry.get("title") or PurePosixPath(name).stem),
        file_name=name,
        media_type=str(media_type),
        size=size,
        sha256=sha256,
    )


def _retitle(a: Attachment, title: str) -> Attachment:
    return Attachment(title=title, file_name=a.file_name, media_type=a.media_type, size=a.size, sha256=a.sha256)


def _string(spec: Mapping[str, Any], key: str) -> str:
    value = spec[key]
    if not isinstance(value, str):
        raise DocumentError(KEYS[key], f"应为文本，实际为 {value!r}")
    return value


def _optional(spec: Mapping[str, Any], key: str) -> str | None:
    return _string(spec, key) if key in spec else None


def _list(spec: Mapping[str, Any], key: str) -> list[object]:
    value = spec.get(key, [])
    return value if isinstance(value, list) else [value]


def _str_items(spec: Mapping[str, Any], key: str) -> list[str]:
    items = _list(spec, key)
    for item in items:
        if not isinstance(item, str):
            raise DocumentError(KEYS[key], f"应为文本，实际为 {item!r}")
    return [str(i) for i in items]


def _enum(spec: Mapping[str, Any], key: str, enum: type[E]) -> E:
    value = spec[key]
    try:
        return enum(value)
    except ValueError as e:
        allowed = "、".join(m.value for m in enum)
        raise DocumentError(KEYS[key], f"“{value}”不是有效值，应为：{allowed}") from e


def _date(spec: Mapping[str, Any], key: str) -> date:
    value = spec[key]
    if isinstance(value, datetime):
        raise DocumentError(KEYS[key], f"“{value}”应为日期（YYYY-MM-DD），不含时间")
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError as e:
        raise DocumentError(KEYS[key], f"“{value}”不是有效日期（应为 YYYY-MM-DD）") from e


# --- from files ---------------------------------------------------------------------------------------------------


MAX_BODY_BYTES = 4 * 1024 * 1024


def read_departments(path: Path) -> dict[str, str]:
    """A department list: ``[departments]`` mapping codes to names."""
    try:
        spec = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"cannot read the department list {path}: {e}") from e
    table = spec.get("departments")
    if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        raise ConfigError(f'{path} must have a [departments] table of code = "name" lines')
    return {str(k): str(v) for k, v in table.items()}


def load_description_file(path: Path, departments: Path | None = None) -> Document:
    """Load a description; relative names in it are relative to its folder.

    Without ``departments``, a ``departments.toml`` beside the description supplies department names.
    """
    folder = path.parent
    if departments is None and (folder / "departments.toml").is_file():
        departments = folder / "departments.toml"

    def resolve(name: str) -> Path:
        target = folder / name
        if not target.is_file():
            raise DocumentError("描述文件", f"找不到文件 {name}（相对于 {folder}）")
        return target

    def read(name: str) -> bytes:
        target = resolve(name)
        if target.stat().st_size > MAX_BODY_BYTES:
            raise DocumentError("正文", f"正文文件 {name} 超过 {MAX_BODY_BYTES // 1024 // 1024} MB")
        return target.read_bytes()

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise ConfigError(f"description file {path} does not exist") from e
    except UnicodeDecodeError as e:
        raise DocumentError("描述文件", f"{path} 不是 UTF-8 编码") from e
    names = read_departments(departments) if departments is not None else None
    return load_description(text, read, lambda name: measure_file(resolve(name)), names)


__all__ = [
    "KEYS",
    "MAX_BODY_BYTES",
    "REQUIRED",
    "Measurer",
    "Reader",
    "load_description",
    "load_description_file",
    "read_departments",
    "split_body",
]
