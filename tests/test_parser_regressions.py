"""Regressions found by the hostile-input corpus and the fuzzers: inputs that once escaped as a foreign exception.

Each is also a corpus case (``tests/attacks/``); here it is checked on its own, without the corpus machinery.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from gwexchange.errors import EnvelopeError
from gwexchange.routing import bundle


def test_a_bundle_manifest_nested_too_deep_is_refused_not_a_recursion_error(tmp_path: Path) -> None:
    """json.loads raises RecursionError (not a ValueError) for deeply nested arrays: it escaped import_bundle."""
    path = tmp_path / "deep.gwxb"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(zipfile.ZipInfo("mimetype"), bundle.MIMETYPE)
        zf.writestr(zipfile.ZipInfo(bundle.MANIFEST), b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(EnvelopeError, match=r"manifest\.json does not parse"):
        bundle._Bundle(path)


def test_a_package_whose_mimetype_member_is_damaged_is_refused_not_an_attribute_error(tmp_path: Path) -> None:
    """Reading the mimetype member failed before ``Package.path`` was set, and the error message needed it."""
    from gwexchange.envelope.package import MIMETYPE, Package

    path = tmp_path / "damaged.gwxp"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(zipfile.ZipInfo("mimetype"), MIMETYPE)
    data = bytearray(path.read_bytes())
    data[0:4] = b"PK\x03\x05"  # the local header's magic number: zipfile still lists the member, cannot read it
    path.write_bytes(bytes(data))
    with pytest.raises(EnvelopeError, match="member mimetype is damaged"):
        Package(path)


def test_a_tree_head_with_non_ascii_base64_is_refused_not_a_value_error() -> None:
    """``base64.b64decode`` raises a plain ValueError (not binascii.Error) for a non-ASCII str: it escaped."""
    from gwexchange.archive.treehead import tree_head_from_xml
    from gwexchange.errors import InputError

    xml = (Path(__file__).resolve().parent / "vectors" / "exchange" / "treehead.xml").read_text(encoding="utf-8")
    start = xml.index("<th:Certificate>") + len("<th:Certificate>")
    with pytest.raises(InputError, match="th:Certificate is not base64"):
        tree_head_from_xml((xml[:start] + "\ufeff" + xml[start:]).encode("utf-8"))


@pytest.mark.parametrize(
    ("issued", "message"),
    [
        ("9999-12-31T00:00:00Z", "beyond the year 9999"),  # issued + valid_days overflows
        ("0001-01-01T00:00:00+14:00", "issued is out of the range of times"),  # no such time in UTC
    ],
)
def test_directory_toml_times_at_the_edge_of_the_calendar_are_config_errors(issued: str, message: str) -> None:
    """compile_directory let OverflowError escape for times the calendar cannot hold."""
    from datetime import UTC, datetime

    from gwexchange.errors import ConfigError
    from gwexchange.network.directory_toml import compile_directory

    policy = '[policy]\n"内网" = "绝密"\n"专网" = "机密"\n"外网" = "内部"\n'
    text = f"serial = 1\nissued = {issued}\nvalid_days = 90\n{policy}"
    with pytest.raises(ConfigError, match=message):
        compile_directory(text, lambda name: b"", now=datetime(2026, 11, 20, tzinfo=UTC))


def _flag_name_utf8_and_break_it(data: bytes, signature: bytes, nth: int) -> bytes:
    """Set the UTF-8 flag (bit 11) on the ``nth`` header with ``signature`` and make its name invalid UTF-8."""
    out = bytearray(data)
    at = -1
    for _ in range(nth + 1):
        at = out.find(signature, at + 1)
    flags, name = (6, 30) if signature == b"PK\x03\x04" else (8, 46)
    out[at + flags + 1] |= 0x08
    out[at + name] = 0xFF
    return bytes(out)


def _zip(members: list[tuple[str, bytes]]) -> bytes:
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in members:
            zf.writestr(zipfile.ZipInfo(name), data)
    return buffer.getvalue()


def test_a_package_with_a_member_name_of_invalid_utf8_is_refused_not_a_unicode_error(tmp_path: Path) -> None:
    """zipfile raises UnicodeDecodeError (a ValueError) for a name flagged UTF-8 that is not: it escaped."""
    from gwexchange.envelope.package import MIMETYPE, Package
    from gwexchange.errors import InputError

    good = _zip([("mimetype", MIMETYPE.encode()), ("envelope.xml", b"<x/>")])
    path = tmp_path / "p.gwxp"
    path.write_bytes(_flag_name_utf8_and_break_it(good, b"PK\x01\x02", 1))  # in the central directory
    with pytest.raises(InputError, match="is not an envelope package"):
        Package(path)
    path.write_bytes(_flag_name_utf8_and_break_it(good, b"PK\x03\x04", 1))  # in envelope.xml's local header
    with Package(path) as package, pytest.raises(EnvelopeError, match=r"member envelope\.xml is damaged"):
        package.envelope_xml()


def test_a_bundle_with_a_member_name_of_invalid_utf8_is_refused_not_a_unicode_error(tmp_path: Path) -> None:
    from gwexchange.errors import InputError

    good = _zip([("mimetype", bundle.MIMETYPE.encode()), (bundle.MANIFEST, b"{}")])
    path = tmp_path / "b.gwxb"
    path.write_bytes(_flag_name_utf8_and_break_it(good, b"PK\x01\x02", 1))  # in the central directory
    with pytest.raises(InputError, match="is not a bundle"):
        bundle._Bundle(path)
    path.write_bytes(_flag_name_utf8_and_break_it(good, b"PK\x03\x04", 1))  # in the manifest's local header
    with pytest.raises(EnvelopeError, match=r"member manifest\.json is damaged"):
        bundle._Bundle(path)


def test_a_bundle_envelope_refused_after_its_parts_were_staged_leaves_no_part_files(tmp_path: Path) -> None:
    """import_bundle staged an envelope's parts, then the node refused it (not routed here): the files stayed."""
    import hashlib
    import importlib.util
    import json
    import sys

    from gwexchange.envelope.sealing import inspect
    from gwexchange.routing.mime import decode_message
    from gwexchange.routing.store import Store

    here = Path(__file__).resolve().parent
    spec = importlib.util.spec_from_file_location("gwx_attacks_runner", here / "attacks" / "runner.py")
    assert spec is not None and spec.loader is not None
    runner = sys.modules.get(spec.name) or importlib.util.module_from_spec(spec)
    if spec.name not in sys.modules:
        sys.modules[spec.name] = runner
        spec.loader.exec_module(runner)
    world = runner.World.load()
    try:
        # a valid envelope with its part, for gd.gov.gxt at gd-edge: gd-hub is not on its route
        message = decode_message((here / "attacks" / "exchange" / "mime-not-routed-here-with-part.eml").read_bytes())
        mid = inspect(message.envelope_xml, world.trust).header.message_id
        manifest = {
            "format": 1, "bundle_id": "00000000-0000-4000-8000-000000000000", "from": "gd-czt", "to": "gd-hub",
            "created": "2026-11-20T10:00:00+00:00",
            "envelopes": [{"message_id": mid, "envelope_sha256": hashlib.sha256(message.envelope_xml).hexdigest()}],
        }  # fmt: skip
        members = [
            ("mimetype", bundle.MIMETYPE.encode()),
            (bundle.MANIFEST, json.dumps(manifest).encode()),
            (f"envelopes/{mid}/envelope.xml", message.envelope_xml),
            (f"envelopes/{mid}/parts/part-1", message.parts["part-1"]),
        ]
        path = tmp_path / "b.gwxb"
        path.write_bytes(_zip(members))
        store = Store(tmp_path / "store", "sqlite://")
        try:
            report = bundle.import_bundle(path, store, world.views["gd-hub"], world.now)
            assert [m for m, _ in report.refused] == [mid] and "not routed through node gd-hub" in report.refused[0][1]
            assert [p for p in store.parts_dir.rglob("*") if p.is_file()] == []
        finally:
            store.close()
    finally:
        world.close()
