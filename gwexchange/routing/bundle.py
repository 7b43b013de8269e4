"""Air-gap bundles: the envelopes queued for one peer, in one file for removable media.

    mimetype                              "application/vnd.gwexchange.bundle+zip", stored first
    manifest.json                         {"format": 1, "bundle_id", "from", "to", "created",
                                           "envelopes": [{"message_id", "envelope_sha256"}, …]}
    envelopes/<message_id>/envelope.xml   the envelope, byte for byte as stored
    envelopes/<message_id>/parts/<cid>    its encrypted parts

Like the envelope package (``gwexchange.envelope.package``) every member is stored, never compressed, so reading never
inflates anything. ``export_bundle`` writes the file beside its name, fsyncs and renames it, and only then marks
the copies sent (the action the SMTP path applies on 250): a crash before that leaves them queued. ``import_bundle``
checks the file's shape before it reads anything, then takes each envelope exactly as the SMTP listener does
(``inspect`` → seen? → ``stage_parts`` → ``apply(receive(...))``); a refused envelope does not stop the others.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from gwexchange import zipsafe
from gwexchange.envelope.sealing import MAX_ENVELOPE_BYTES, inspect
from gwexchange.errors import EnvelopeError, GwxError, InputError
from gwexchange.files import atomic_file
from gwexchange.routing import node_logic
from gwexchange.routing.node_logic import Hop, NodeView
from gwexchange.routing.store import Store

MIMETYPE = "application/vnd.gwexchange.bundle+zip"
MANIFEST = "manifest.json"
FORMAT = 1
MAX_MEMBERS = 10_000
MAX_CENTRAL_DIRECTORY = MAX_MEMBERS * zipsafe.ENTRY_BYTES  # the ZIP index, not a signed directory
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_PART_BYTES = 4 * 1024 * 1024 * 1024
CHUNK = 1024 * 1024
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_ENVELOPE_MEMBER = re.compile(rf"envelopes/({_UUID})/envelope\.xml")
_PART_MEMBER = re.compile(rf"envelopes/({_UUID})/parts/(part-[1-9][0-9]{{0,5}})")
_MESSAGE_ID = re.compile(_UUID)
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class ExportReport:
    bundle_id: str
    path: Path
    from_node: str
    to_node: str
    message_ids: tuple[str, ...]


@dataclass(slots=True)
class ImportReport:
    bundle_id: str
    from_node: str
    to_node: str
    accepted: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (message id, reason)

    def as_json(self) -> dict[str, Any]:
        return {
            "bundle_id": self.bundle_id,
            "from": self.from_node,
            "to": self.to_node,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "refused": [{"message_id": mid, "reason": reason} for mid, reason in self.refused],
        }


# --- export --------------------------------------------------------------------------------------------------


def export_bundle(store: Store, view: NodeView, peer: str, path: Path, now: datetime) -> ExportReport:
    """Write every queued copy whose next hop is ``peer`` into a bundle at ``path``, then mark them sent."""
    if peer == view.node_id or view.directory.find_node(peer) is None:
        raise InputError(f"{peer} is not another node of directory {view.directory.serial}")
    items = [i for i in store.queue() if i.next_hop == peer and i.state == "queued"]
    hops = [Hop(i.message_id, i.next_hop, tuple(i.recipients.split()), i.attempts, i.expires) for i in items]
    envelopes = [(hop.message_id, store.envelope_xml(hop.message_id)) for hop in hops]
    bundle_id = str(uuid.uuid4())
    manifest = {
        "format": FORMAT,
        "bundle_id": bundle_id,
        "from": view.node_id,
        "to": peer,
        "created": now.isoformat(),
        "envelopes": [
            {"message_id": mid, "envelope_sha256": hashlib.sha256(xml).hexdigest()} for mid, xml in envelopes
        ],
    }
    with atomic_file(path) as out, zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        zf.writestr(zipfile.ZipInfo("mimetype"), MIMETYPE)
        zf.writestr(zipfile.ZipInfo(MANIFEST), json.dumps(manifest, ensure_ascii=False, indent=1))
        for mid, xml in envelopes:
            zf.writestr(zipfile.ZipInfo(f"envelopes/{mid}/envelope.xml"), xml)
            for part in store.parts(mid):
                info = zipfile.ZipInfo(f"envelopes/{mid}/parts/{part.cid}")
                with zf.open(info, "w", force_zip64=True) as member:
                    for chunk in store.read_part(mid, part.cid):
                        member.write(chunk)
    # The file is durable: the copies are on their way, as after a 250 from the peer.
    store.apply([action for hop in hops for action in node_logic.attempt_succeeded(hop, now)])
    return ExportReport(bundle_id, path, view.node_id, peer, tuple(mid for mid, _ in envelopes))


# --- import --------------------------------------------------------------------------------------------------


class _Bundle:
    """A bundle opened for reading, its shape checked: the members, the mimetype and the manifest."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip, infos = zipsafe.open_checked(
            path,
            max_members=MAX_MEMBERS,
            max_directory_bytes=MAX_CENTRAL_DIRECTORY,
            refuse=self._refuse,
            unreadable=lambda e: InputError(f"{path} is not a bundle: {e}"),
        )
        try:
            self._check(infos)
        except BaseException:
            self._zip.close()
            raise

    def close(self) -> None:
        self._zip.close()

    def _refuse(self, why: str) -> EnvelopeError:
        return EnvelopeError(f"{self.path} is refused: {why}")

    def _check(self, infos: list[zipfile.ZipInfo]) -> None:
        names = {info.filename for info in infos}
        self.envelope_members: set[str] = set()
        self.part_members: dict[str, set[str]] = {}
        for info in infos:
            name = info.filename
            if info.flag_bits & 0x1:
                raise self._refuse(f"member {name!r} is encrypted")
            if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
                raise self._refuse(f"member {name!r} is compressed; bundles store members as-is")
            if name in ("mimetype", MANIFEST):
                limit = MAX_MANIFEST_BYTES
            elif m := _ENVELOPE_MEMBER.fullmatch(name):
                limit = MAX_ENVELOPE_BYTES
                self.envelope_members.add(m.group(1))
            elif m := _PART_MEMBER.fullmatch(name):
                limit = MAX_PART_BYTES
                self.part_members.setdefault(m.group(1), set()).add(m.group(2))
            else:
                raise self._refuse(f"unexpected member {name!r}")
            if info.file_size > limit:
                raise self._refuse(f"member {name!r} is larger than {limit} bytes")
        if self._read("mimetype") != MIMETYPE.encode("ascii"):
            raise self._refuse("not a gwexchange bundle (wrong mimetype)")
        if MANIFEST not in names:
            raise self._refuse("no manifest.json")
        self._manifest()

    def _manifest(self) -> None:
        try:
            data = json.loads(self._read(MANIFEST).decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as e:  # RecursionError: arrays nested too deep
            raise self._refuse(f"manifest.json does not parse ({e})") from e
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise self._refuse(f"manifest.json is not a format {FORMAT} manifest")
        for key in ("bundle_id", "from", "to", "created"):
            if not isinstance(data.get(key), str):
                raise self._refuse(f"manifest.json lacks {key}")
        self.bundle_id: str = data["bundle_id"]
        self.from_node: str = data["from"]
        self.to_node: str = data["to"]
        entries = data.get("envelopes")
        if not isinstance(entries, list):
            raise self._refuse("manifest.json lacks its list of envelopes")
        self.digests: dict[str, str] = {}
        for entry in entries:
            if not isinstance(entry, dict) or set(entry) != {"message_id", "envelope_sha256"}:
                raise self._refuse("manifest.json has a malformed envelope entry")
            mid, digest = entry["message_id"], entry["envelope_sha256"]
            if not isinstance(mid, str) or not _MESSAGE_ID.fullmatch(mid):
                raise self._refuse(f"manifest.json names a bad message id {mid!r}")
            if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
                raise self._refuse(f"manifest.json has a bad digest for {mid}")
            if mid in self.digests:
                raise self._refuse(f"manifest.json lists {mid} twice")
            self.digests[mid] = digest
        if set(self.digests) != self.envelope_members:
            raise self._refuse("the manifest and the envelopes in the bundle do not match")
        if not set(self.part_members) <= self.envelope_members:
            raise self._refuse("parts without their envelope")

    def _read(self, name: str) -> bytes:
        try:
            return self._zip.read(name)
        except zipsafe.FAULTS as e:
            raise EnvelopeError(f"{self.path}: member {name} is damaged ({e})") from e

    def envelope_xml(self, message_id: str) -> bytes:
        return self._read(f"envelopes/{message_id}/envelope.xml")

    def part(self, message_id: str, cid: str) -> Iterator[bytes]:
        name = f"envelopes/{message_id}/parts/{cid}"
        try:
            with self._zip.open(name) as member:
                while chunk := member.read(CHUNK):
                    yield chunk
        except zipsafe.FAULTS as e:  # a CRC mismatch: damaged on the way
            raise EnvelopeError(f"{self.path}: member {name} is damaged ({e})") from e


def import_bundle(path: Path, store: Store, view: NodeView, now: datetime) -> ImportReport:
    """Take in the envelopes of a bundle made for this node, each as the SMTP listener takes one.

    The bundle's shape (members, mimetype, manifest, sizes) is checked first; a bad one is refused whole
    (``EnvelopeError``, or ``InputError`` if it is no ZIP at all). Then each envelope is accepted, found a
    duplicate, or refused with its reason.
    """
    bundle = _Bundle(path)
    try:
        if bundle.to_node != view.node_id:
            raise EnvelopeError(f"{path} is a bundle for node {bundle.to_node}, not for this node {view.node_id}")
        report = ImportReport(bundle.bundle_id, bundle.from_node, bundle.to_node)
        for mid, digest in bundle.digests.items():
            try:
                if _take(bundle, mid, digest, store, view, now):
                    report.accepted.append(mid)
                else:
                    report.duplicates.append(mid)
            except GwxError as e:
                report.refused.append((mid, str(e).splitlines()[0] if str(e) else type(e).__name__))
        return report
    finally:
        bundle.close()


def _take(bundle: _Bundle, mid: str, digest: str, store: Store, view: NodeView, now: datetime) -> bool:
    """One envelope, by the SMTP listener's path (``Node._receive``): False if it is a duplicate."""
    envelope_xml = bundle.envelope_xml(mid)
    if hashlib.sha256(envelope_xml).hexdigest() != digest:
        raise EnvelopeError(f"envelope {mid} does not match the digest in the manifest")
    inspected = inspect(envelope_xml, view.trust)
    if inspected.header.message_id != mid:
        raise EnvelopeError(f"the envelope filed as {mid} is message {inspected.header.message_id}")
    if store.seen(mid):
        return False
    cids = {p.cid for p in inspected.parts}
    if bundle.part_members.get(mid, set()) != cids:
        raise EnvelopeError(f"the parts of {mid} in the bundle are not those its envelope signs")
    try:
        store.stage_parts(mid, inspected.parts, {cid: bundle.part(mid, cid) for cid in cids})
        store.apply(node_logic.receive(inspected, view, store, now))
    except GwxError:
        store.discard_parts(mid)  # a refused envelope leaves no part files behind (as on the SMTP path)
        raise
    return True


__all__ = [
    "CHUNK",
    "FORMAT",
    "MANIFEST",
    "MAX_CENTRAL_DIRECTORY",
    "MAX_MANIFEST_BYTES",
    "MAX_MEMBERS",
    "MAX_PART_BYTES",
    "MIMETYPE",
    "ExportReport",
    "ImportReport",
    "export_bundle",
    "import_bundle",
]
