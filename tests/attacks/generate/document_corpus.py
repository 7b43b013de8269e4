"""The document corpus: an attack (a file and the error ``verify_document`` must refuse it with), the corpus that
collects them, and the context every section starts from (the draft and signed notices, the joint notice)."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from gwexchange.envelope.description import load_description_file
from gwexchange.envelope.xmlform import document_to_xml

from .base import EXAMPLES, GW, Holder, Shape, first, parse, serialize, sign_shape
from .pki import Pki


@dataclass
class Attack:
    name: str
    data: bytes
    error: str
    message: str
    description: str


class Corpus:
    def __init__(self) -> None:
        self.attacks: list[Attack] = []

    def add(self, name: str, data: bytes | etree._Element, error: str, message: str, description: str) -> None:
        if isinstance(data, etree._Element):
            data = serialize(data)
        assert not any(a.name == name for a in self.attacks), name
        self.attacks.append(Attack(name + ".xml", data, error, message, " ".join(description.split())))


def make_draft() -> bytes:
    return document_to_xml(load_description_file(EXAMPLES / "notice.toml"))


@dataclass
class Context:
    """What every section of the corpus starts from."""

    pki: Pki
    draft: bytes
    signed: bytes
    joint: bytes
    joint_draft: bytes
    corpus: Corpus

    def __post_init__(self) -> None:
        self.original = parse(self.signed)
        self.office, self.office_rsa = self.pki.office, self.pki.office_rsa
        title = first(self.original, GW + "Title").text
        assert title is not None
        self.title = title
        self.add = self.corpus.add

    def fresh(self) -> etree._Element:
        """The draft notice, unsigned."""
        return parse(self.draft)

    def signed_copy(self) -> etree._Element:
        """The valid signed notice."""
        return parse(self.signed)

    def custom(self, shape: Shape | None = None, signer: Holder | None = None, **kw: str) -> etree._Element:
        """The draft notice signed here, in ``shape``, by ``signer`` (default: gd.gov.office)."""
        root = self.fresh()
        sign_shape(root, signer or self.office, shape, **kw)
        return root
