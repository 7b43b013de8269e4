"""The one XML parser of gwexchange, hardened for hostile input.

Every byte string that arrives from outside is parsed here and nowhere else. Input is UTF-8. Refused outright:
any DOCTYPE (and with it every DTD, internal or external entity and entity-expansion bomb), processing
instructions, comments (they split text nodes, the trick behind SAML comment-truncation attacks), any file or
network access, documents larger than ``max_bytes`` and trees deeper than ``max_depth``.
"""

from __future__ import annotations

from lxml import etree

from gwexchange.errors import XmlInputError

DEFAULT_MAX_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_DEPTH = 32


class _RefuseExternal(etree.Resolver):
    """libxml2 asks a resolver before it opens any file or URL; ours opens none."""

    def resolve(self, system_url: str, public_id: str, context: object) -> None:  # type: ignore[override]  # stubs lack context
        raise XmlInputError(f"XML asks to load an external resource ({system_url}); refused")


# encoding="utf-8" overrides whatever the document declares: a UTF-16 document cannot hide a DOCTYPE from the
# byte scan below, it fails to parse instead.
_PARSER = etree.XMLParser(
    encoding="utf-8",
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_blank_text=False,
    collect_ids=False,
)
_PARSER.resolvers.add(_RefuseExternal())


def parse(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, max_depth: int = DEFAULT_MAX_DEPTH) -> etree._Element:
    """Parse ``data`` into an element tree, or raise ``XmlInputError`` saying why it was refused."""
    if not isinstance(data, bytes):
        raise XmlInputError("XML must be given as bytes")
    if len(data) > max_bytes:
        raise XmlInputError(f"XML is {len(data)} bytes, more than the limit of {max_bytes}")
    # A DOCTYPE is refused before libxml2 sees it, so no entity declaration is ever parsed; the check on the
    # parsed tree below is the second line of defence.
    if b"<!" in data and (b"<!DOCTYPE" in data or b"<!ENTITY" in data):  # one scan for the common case
        raise XmlInputError("XML with a DOCTYPE or entity declaration is refused")
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as e:
        raise XmlInputError(f"malformed XML: {e}") from e
    info = root.getroottree().docinfo
    if info.internalDTD is not None or info.system_url is not None or info.public_id is not None:
        raise XmlInputError("XML with a DOCTYPE or entity declaration is refused")
    # One XPath evaluated in C tells whether any element lies deeper than the limit.
    if root.xpath("boolean(" + "/*" * (max_depth + 1) + ")"):
        raise XmlInputError(f"XML is nested deeper than {max_depth} levels")
    if any(True for _ in root.iter(etree.Comment, etree.ProcessingInstruction)) or _outside_root(root):
        raise XmlInputError("XML with comments or processing instructions is refused")
    return root


def _outside_root(root: etree._Element) -> bool:
    """Comments and processing instructions before or after the document element."""
    return root.getprevious() is not None or root.getnext() is not None


__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_DEPTH",
    "parse",
]
