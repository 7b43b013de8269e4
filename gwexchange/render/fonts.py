"""Which installed font stands in for each typeface GB/T 9704 names: 仿宋, 小标宋, 黑体 and 楷体.

The standard's faces (方正小标宋, 仿宋_GB2312, 黑体, 楷体_GB2312) are not free. The stand-ins are freely licensed
TrueType fonts from Debian packages that ``dev.sh`` installs; reportlab embeds TrueType outlines, not the CFF of
the Noto CJK family, so those are not candidates. cwTeX FangSong (fonts-cwtex-fs) was checked and rejected: it
is a Big5 font that lacks about a third of the simplified characters of the sample bodies (专, 东, 业, 发, 国, …),
so a body set in it would be a patchwork of two faces. Every face has a fallback chain, consulted per character.

Nothing is read from the network, and nothing but the font files is read from disk.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from fontTools.pens.basePen import BasePen  # type: ignore[import-untyped]
from fontTools.ttLib import TTFont as FontToolsFont  # type: ignore[import-untyped]
from reportlab.pdfbase import pdfmetrics  # type: ignore[import-untyped]
from reportlab.pdfbase.ttfonts import TTFError, TTFont  # type: ignore[import-untyped]

from gwexchange.errors import ConfigError

# Where Debian installs fonts (and where a local administrator may add one).
FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"))


class Face(StrEnum):
    """The typefaces GB/T 9704-2012 prescribes."""

    FANGSONG = "仿宋"
    XIAOBIAOSONG = "小标宋"
    HEITI = "黑体"
    KAITI = "楷体"


@dataclass(frozen=True, slots=True)
class FontFile:
    """One installed font: its own name, its file under a font directory, and the package that installs it."""

    family: str
    file: str
    subfont: int
    package: str


UMING = FontFile("AR PL UMing CN", "truetype/arphic/uming.ttc", 0, "fonts-arphic-uming")
UKAI = FontFile("AR PL UKai CN", "truetype/arphic/ukai.ttc", 0, "fonts-arphic-ukai")
ZENHEI = FontFile("WenQuanYi Zen Hei", "truetype/wqy/wqy-zenhei.ttc", 0, "fonts-wqy-zenhei")


@dataclass(frozen=True, slots=True)
class StandIn:
    """The fonts that set one face, first choice first; ``bold`` thickens the strokes (小标宋 is a heavy Song)."""

    chain: tuple[FontFile, ...]
    bold: bool = False


STAND_INS: dict[Face, StandIn] = {
    # A light Song: 仿宋 is a Song-derived face, and UMing's CN variant has the mainland glyph forms.
    Face.FANGSONG: StandIn((UMING, UKAI, ZENHEI)),
    Face.XIAOBIAOSONG: StandIn((UMING, ZENHEI), bold=True),
    Face.HEITI: StandIn((ZENHEI, UMING)),
    Face.KAITI: StandIn((UKAI, UMING, ZENHEI)),
}

# Outline commands of one glyph, in em units (1.0 = font size): ("M", x, y), ("L", x, y), ("C", 6 numbers), ("Z",).
Outline = tuple[tuple[Any, ...], ...]


@dataclass(frozen=True, slots=True)
class LoadedFont:
    """A font registered with reportlab under ``name``."""

    name: str
    file: FontFile
    path: Path
    ttf: Any = field(repr=False, compare=False)

    def has(self, char: str) -> bool:
        return ord(char) in self.ttf.face.charToGlyph

    def advance(self, char: str) -> float:
        """Advance width of ``char`` in em."""
        width: float = self.ttf.face.charWidths.get(ord(char), self.ttf.face.defaultWidth)
        return width / 1000.0


@dataclass(frozen=True)
class FontSet:
    """The loaded stand-ins of every face. Made by ``load_fonts``; the layout measures and draws with it."""

    faces: dict[Face, tuple[LoadedFont, ...]]
    bold: frozenset[Face]
    _outlines: dict[tuple[str, str], Outline] = field(default_factory=dict, repr=False, compare=False)

    def font_for(self, face: Face, char: str) -> LoadedFont | None:
        """The first font of ``face``'s chain with a glyph for ``char``; None if no font has one."""
        for font in self.faces[face]:
            if font.has(char):
                return font
        return None

    def primary(self, face: Face) -> LoadedFont:
        return self.faces[face][0]

    def runs(self, face: Face, text: str) -> Iterator[tuple[str, str]]:
        """``text`` split into runs set in one font each, ``(font name, characters)``: the face's first font, or
        the fallback that has a character it lacks."""
        run, name = "", ""
        for char in text:
            font = self.font_for(face, char) or self.primary(face)
            if font.name != name and run:
                yield name, run
                run = ""
            name = font.name
            run += char
        if run:
            yield name, run

    def missing(self, face: Face, text: str) -> str:
        """The characters of ``text`` that no font of ``face``'s chain can draw."""
        blank = {"\u3000", " "}
        return "".join(sorted({c for c in text if c not in blank and self.font_for(face, c) is None}))

    def outline(self, face: Face, char: str) -> Outline:
        """The outline of ``char`` in ``face`` (for drawing a seal: its lettering is a picture, not text)."""
        font = self.font_for(face, char) or self.primary(face)
        key = (font.name, char)
        cached = self._outlines.get(key)
        if cached is None:
            cached = _glyph_outline(font.path, font.file.subfont, char)
            self._outlines[key] = cached
        return cached

    def mapping(self) -> list[tuple[Face, str, str]]:
        """(face, font family, Debian package) of each face's first choice, for reports and README."""
        return [(face, fonts[0].file.family, fonts[0].file.package) for face, fonts in self.faces.items()]


def _locate(file: FontFile, dirs: Iterable[Path] = FONT_DIRS) -> Path:
    """The installed path of ``file``, or a ConfigError saying which Debian package to install."""
    for folder in dirs:
        path = folder / file.file
        if path.is_file():
            return path
    raise ConfigError(
        f"the font {file.family} ({file.file}) is not installed: install the Debian package {file.package} "
        f"(apt-get install {file.package}), or run ./dev.sh, which installs it"
    )


def load_fonts(dirs: tuple[Path, ...] = FONT_DIRS) -> FontSet:
    """Locate, load and register every stand-in font (once per process and folder list)."""
    return _load_fonts(tuple(dirs))


@functools.lru_cache(maxsize=4)
def _load_fonts(dirs: tuple[Path, ...]) -> FontSet:
    loaded: dict[FontFile, LoadedFont] = {}
    for stand_in in STAND_INS.values():
        for file in stand_in.chain:
            if file not in loaded:
                path = _locate(file, dirs)
                name = "gwx-" + file.family.replace(" ", "")
                try:
                    ttf = TTFont(name, str(path), subfontIndex=file.subfont)
                except (TTFError, OSError) as e:
                    raise ConfigError(f"cannot load the font {path} (package {file.package}): {e}") from e
                pdfmetrics.registerFont(ttf)
                loaded[file] = LoadedFont(name=name, file=file, path=path, ttf=ttf)
    return FontSet(
        faces={face: tuple(loaded[f] for f in s.chain) for face, s in STAND_INS.items()},
        bold=frozenset(face for face, s in STAND_INS.items() if s.bold),
    )


@functools.lru_cache(maxsize=8)
def _font_tools(path: Path, subfont: int) -> Any:
    # From bytes in memory: a lazily read font would otherwise keep its file open for the life of the process.
    return FontToolsFont(io.BytesIO(path.read_bytes()), fontNumber=subfont, lazy=True)


class _Recorder(BasePen):  # type: ignore[misc]
    """Records a glyph's outline; BasePen turns TrueType's quadratic curves into the cubic ones PDF draws."""

    def __init__(self, glyph_set: Any, scale: float) -> None:
        super().__init__(glyph_set)
        self.scale = scale
        self.commands: list[tuple[Any, ...]] = []

    def _moveTo(self, p: tuple[float, float]) -> None:
        self.commands.append(("M", p[0] * self.scale, p[1] * self.scale))

    def _lineTo(self, p: tuple[float, float]) -> None:
        self.commands.append(("L", p[0] * self.scale, p[1] * self.scale))

    def _curveToOne(self, p1: tuple[float, float], p2: tuple[float, float], p3: tuple[float, float]) -> None:
        self.commands.append(("C", *(v * self.scale for p in (p1, p2, p3) for v in p)))

    def _closePath(self) -> None:
        self.commands.append(("Z",))


def _glyph_outline(path: Path, subfont: int, char: str) -> Outline:
    font = _font_tools(path, subfont)
    glyph_name = font.getBestCmap().get(ord(char))
    if glyph_name is None:
        return ()
    glyph_set = font.getGlyphSet()
    pen = _Recorder(glyph_set, 1.0 / font["head"].unitsPerEm)
    glyph_set[glyph_name].draw(pen)
    return tuple(pen.commands)


__all__ = [
    "FONT_DIRS",
    "STAND_INS",
    "UKAI",
    "UMING",
    "ZENHEI",
    "Face",
    "FontFile",
    "FontSet",
    "LoadedFont",
    "Outline",
    "StandIn",
    "load_fonts",
]
