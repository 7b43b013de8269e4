"""What a department's clerk does at its node, as library calls: send a document, answer one in the inbox.

``gwx send`` and ``gwx demo`` share ``send_document``, so the demo shows exactly what a clerk's command does: check
the route, sign, verify, seal for every recipient, stage the parts and queue the envelope in one commit.
``gwx send --signed`` (``send_signed``) takes a document its issuers signed in turn, a joint one.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from gwexchange import xmlsafe
from gwexchange.crypto.certificates import identity_of
from gwexchange.crypto.xmldsig import Signer
from gwexchange.envelope.model import Document
from gwexchange.envelope.receipts import ReceiptKind
from gwexchange.envelope.sealing import DEFAULT_LIFETIME, open_envelope, seal
from gwexchange.envelope.signing import SIGNING_TAG, sign_document, verify_document
from gwexchange.envelope.xmlform import document_from_element, document_to_xml
from gwexchange.errors import ConfigError, InputError, VerificationError
from gwexchange.files import read_chunks, write_new
from gwexchange.network.routes import RoutePlan, plan
from gwexchange.routing import node_logic
from gwexchange.routing.context import NodeContext
from gwexchange.routing.control import remove_dir, staging_dir


@dataclass(frozen=True, slots=True)
class SentDocument:
    """A queued document: its message id and the route tree it takes."""

    message_id: str
    route: RoutePlan


def attachment_files(description: Path, folder: Path | None = None) -> dict[str, Path]:
    """Attachment file name → its file: in ``folder`` if given, else where the description's entries point."""
    if folder is not None:
        return {p.name: p for p in folder.iterdir() if p.is_file()}
    try:
        spec = tomllib.loads(description.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}
    found: dict[str, Path] = {}
    for entry in spec.get("attachments", []):
        name = entry.get("file") if isinstance(entry, dict) else entry
        if isinstance(name, str):
            path = description.parent / name
            found[path.name] = path
    return found


def send_document(
    ctx: NodeContext,
    department: str,
    doc: Document,
    files: Mapping[str, Path],
    *,
    at: datetime,
    co_signers: Sequence[Signer] = (),
    lifetime: timedelta = DEFAULT_LIFETIME,
) -> SentDocument:
    """Sign ``doc`` as its issuers, seal it at this node for its recipients and queue it; nothing is queued on error.

    ``department`` (served here) sends it. A joint document (联合发文) needs every other issuer's signer in
    ``co_signers``: each signs in the order of 发文机关, as the departments would pass the draft along.
    """
    signers = {identity_of(s.certificate).code: s for s in co_signers}
    return _sign_and_queue(ctx, department, document_to_xml(doc), doc, 0, signers, files, at, lifetime)


def send_signed(
    ctx: NodeContext,
    department: str,
    xml: bytes,
    files: Mapping[str, Path],
    *,
    at: datetime,
    lifetime: timedelta = DEFAULT_LIFETIME,
) -> SentDocument:
    """Send a document its issuers signed in turn (``gwx doc sign``), as a joint document (联合发文) travels.

    ``department`` signs here if its turn has come; by then every issuer must have signed, or nothing is queued.
    """
    root = xmlsafe.parse(xml)
    signed = sum(1 for _ in root.iter(SIGNING_TAG))
    return _sign_and_queue(ctx, department, xml, document_from_element(root), signed, {}, files, at, lifetime)


def _sign_and_queue(
    ctx: NodeContext,
    department: str,
    xml: bytes,
    doc: Document,
    signed: int,
    signers: Mapping[str, Signer],
    files: Mapping[str, Path],
    at: datetime,
    lifetime: timedelta,
) -> SentDocument:
    """Add the signatures still due (the first ``signed`` issuers have signed ``xml``), then seal and queue."""
    if department not in ctx.view.departments:
        raise ConfigError(f"department {department} is not served by node {ctx.config.node_id}")
    issuers = [d.code for d in doc.issuers]
    if department not in issuers:
        raise ConfigError(f"{department} does not issue this document ({'、'.join(issuers)})")
    signers = {**signers, department: ctx.view.departments[department].signer}
    unsigned = [code for code in issuers[signed:] if code not in signers]
    if unsigned:
        raise ConfigError(f"联合发文须由每个发文机关签署：缺少 {'、'.join(unsigned)} 的签名")
    recipients = tuple(d.code for d in doc.recipients)
    route = plan(ctx.directory, ctx.config.node_id, recipients, doc.classification)  # RouteError before anything
    missing = [a.file_name for a in doc.attachments if a.file_name not in files]
    if missing:
        raise ConfigError(f"attachments not found: {'、'.join(missing)} (give --attachments DIR)")
    for code in issuers[signed:]:
        xml = sign_document(xml, signers[code], at=at, trust=ctx.trust)
    verified = verify_document(xml, ctx.trust, now=at)
    certs = {c: ctx.directory.department(c).encryption_certificate for c in recipients}
    sources = {a.file_name: read_chunks(files[a.file_name]) for a in doc.attachments}
    scratch = staging_dir(ctx.config.home)
    try:

        def sink(cid: str, octets: Iterable[bytes]) -> None:
            with (scratch / cid).open("wb") as f:
                for chunk in octets:
                    f.write(chunk)

        sealed = seal(
            verified,
            certs,
            ctx.view.node_signer,
            trust=ctx.trust,
            sender_department=department,
            node_id=ctx.config.node_id,
            now=at,
            attachments=sources,
            part_sink=sink,
            lifetime=lifetime,
        )
        message_id = sealed.header.message_id
        ctx.store.stage_parts(message_id, sealed.parts, {p.cid: read_chunks(scratch / p.cid) for p in sealed.parts})
        ctx.store.apply(node_logic.originate(sealed, department, ctx.view, ctx.store, at))
    finally:
        remove_dir(scratch)
    return SentDocument(message_id, route)


def answer_document(
    ctx: NodeContext,
    department: str,
    message_id: str,
    kind: ReceiptKind,
    *,
    at: datetime,
    reason: str | None = None,
) -> None:
    """签收 or 退回 a document in ``department``'s inbox; the signed receipt is queued back to its sender."""
    item = ctx.store.inbox_item(department, message_id)  # NotFoundError names the message and the inbox
    ctx.store.apply(node_logic.answer(item, kind, ctx.view, ctx.store, at, reason=reason))


def export_document(ctx: NodeContext, department: str, message_id: str, folder: Path) -> tuple[Path, ...]:
    """Write a document of ``department``'s inbox to ``folder``: the signed XML (``<message id>.signed.xml``, as
    ``gwx open`` names it) and each attachment under its file name, decrypted and checked against the digest
    signed in the document. Attachment names cannot take the XML's name: the message id is drawn at sealing,
    after the issuers signed the names.

    The envelope is opened again, as it was verified when it arrived (at its arrival time: it may have expired
    since). A file is published only once whole and verified; an existing file is never overwritten.
    """
    try:
        entry = next(e for e in ctx.store.inbox(department) if e.message_id == message_id)
    except StopIteration:
        raise InputError(f"message {message_id} is not in the inbox of {department}") from None
    keys = ctx.view.departments.get(department)
    if keys is None:
        raise ConfigError(f"department {department} is not served by node {ctx.config.node_id}")
    opened = open_envelope(
        ctx.store.envelope_xml(message_id), department, keys.encryption_key, ctx.trust, now=entry.received_at
    )
    if opened.document.digest != entry.document_sha256:
        raise VerificationError(f"message {message_id}: the stored envelope is not the document filed in the inbox")
    written = [folder / f"{message_id}.signed.xml", *(folder / part.file_name for part in opened.envelope.parts)]
    folder.mkdir(parents=True, exist_ok=True)
    taken = [path.name for path in written if path.exists() or path.is_symlink()]
    if taken:
        raise InputError(f"{folder} already holds {'、'.join(taken)}: export to an empty folder")
    write_new(written[0], [opened.document.signed_bytes])
    for part, target in zip(opened.envelope.parts, written[1:], strict=True):
        write_new(target, opened.attachment(part, ctx.store.read_part(message_id, part.cid)))
    return tuple(written)


__all__ = [
    "SentDocument",
    "answer_document",
    "attachment_files",
    "export_document",
    "send_document",
    "send_signed",
]
