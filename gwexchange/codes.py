"""The names in the exchange, in one place: department codes, node ids and message ids.

A department code is dotted, like a reversed domain (gd.gov.czt); a node id is one label (gd-hub). They differ
on purpose, so a certificate, a directory entry or a header can never confuse the two.
"""

from __future__ import annotations

import re

from gwexchange.errors import GwxError, InputError

DEPARTMENT_CODE = re.compile(r"[a-z0-9][a-z0-9-]*(\.[a-z0-9][a-z0-9-]*)+")
NODE_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
MESSAGE_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")  # a lower-case UUID
MAX_DEPARTMENT_CODE = 64


def is_department_code(value: object) -> bool:
    return isinstance(value, str) and len(value) <= MAX_DEPARTMENT_CODE and bool(DEPARTMENT_CODE.fullmatch(value))


def is_node_id(value: object) -> bool:
    return isinstance(value, str) and bool(NODE_ID.fullmatch(value))


def is_message_id(value: object) -> bool:
    return isinstance(value, str) and bool(MESSAGE_ID.fullmatch(value))


def check_node_id(value: str, error: type[GwxError] = InputError) -> str:
    """``value`` if it is a node id; else ``error`` (whose fault a bad one is: a config's, a peer's, a caller's)."""
    if not is_node_id(value):
        raise error(f"node id {value!r} is not valid (like gd-hub: lower-case letters, digits and '-')")
    return value


__all__ = [
    "DEPARTMENT_CODE",
    "MAX_DEPARTMENT_CODE",
    "MESSAGE_ID",
    "NODE_ID",
    "check_node_id",
    "is_department_code",
    "is_message_id",
    "is_node_id",
]
