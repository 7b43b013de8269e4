"""Routes over the directory: fewest hops over what the 密级 permits, the tie-break, the fan-out tree, the reasons
given when a recipient cannot be reached — and a property test on random networks against a reference search.

Directories here are built in memory: every node and department gets certificates from one throw-away root made
on first use, so any topology can be written down without a PKI on disk.
"""

from __future__ import annotations

import functools
import itertools
from collections import deque
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import event, given, settings
from hypothesis import strategies as st

from gwexchange.crypto.certificates import Role, Usage, issue, make_root
from gwexchange.crypto.keys import generate_key
from gwexchange.crypto.suite import PrivateKey
from gwexchange.envelope.model import Classification
from gwexchange.errors import ConfigError, InputError, RouteError
from gwexchange.network.directory import DepartmentEntry, Directory, Link, NodeEntry, Zone, ZonePolicy
from gwexchange.network.directory_toml import compile_directory
from gwexchange.network.routes import RoutePlan, format_path, plan

START = datetime(2026, 11, 10, tzinfo=UTC)
ISSUED = datetime(2026, 11, 20, 8, 0, 0, tzinfo=UTC)
INTERNAL, PRIVATE, PUBLIC = Zone.INTERNAL, Zone.PRIVATE, Zone.PUBLIC
PUB, INT, SEC, CONF, TOP = (
    Classification.PUBLIC,
    Classification.INTERNAL,
    Classification.SECRET,
    Classification.CONFIDENTIAL,
    Classification.TOP_SECRET,
)
EXAMPLE_POLICY = ZonePolicy({INTERNAL: TOP, PRIVATE: CONF, PUBLIC: INT})
NETWORK_TOML = Path(__file__).resolve().parents[2] / "examples" / "network.toml"


# --- certificates and directories in memory -------------------------------------------------------------------


@functools.cache
def _root() -> tuple[PrivateKey, x509.Certificate]:
    key = generate_key()
    return key, make_root(
        key, code="test.gov.ca", name="路由测试根", not_before=START, lifetime=timedelta(days=3650), serial=1
    )


@functools.cache
def _holder_key() -> PrivateKey:
    return generate_key()  # every holder shares one key: these tests never sign or encrypt


@functools.cache
def certificate(code: str, usage: Usage) -> x509.Certificate:
    ca_key, ca = _root()
    return issue(
        ca_key,
        ca,
        _holder_key().public_key(),
        code=code,
        name=f"{code} 测试",
        role=Role.NODE if usage is Usage.NODE else Role.DEPARTMENT,
        usage=usage,
        not_before=START,
        lifetime=timedelta(days=365),
        serial=x509.random_serial_number(),
    )


def node(node_id: str, zone: Zone) -> NodeEntry:
    return NodeEntry(node_id, f"{node_id}.example", 25, zone, certificate(node_id, Usage.NODE))


def department(code: str, home: str) -> DepartmentEntry:
    return DepartmentEntry(
        code, f"{code} 机关", home, certificate(code, Usage.SIGNING), certificate(code, Usage.ENCRYPTION)
    )


def network(
    nodes: Mapping[str, Zone],
    links: Iterable[tuple[str, str, Zone]],
    departments: Mapping[str, str],
    policy: ZonePolicy = EXAMPLE_POLICY,
) -> Directory:
    """A directory of ``nodes`` (id → zone), ``links`` (a, b, zone) and ``departments`` (code → home node)."""
    return Directory(
        serial=1,
        issued=ISSUED,
        expires=ISSUED + timedelta(days=30),
        policy=policy,
        nodes=tuple(node(n, z) for n, z in nodes.items()),
        departments=tuple(department(c, h) for c, h in departments.items()),
        links=tuple(Link(a, b, z) for a, b, z in links),
    )


def read_in_memory(name: str) -> bytes:
    """``ca/issued/<code>/<usage>.crt`` as the example network names them, made on the fly."""
    parts = Path(name).parts
    assert parts[:2] == ("ca", "issued"), name
    return certificate(parts[2], Usage(Path(parts[3]).stem)).public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def example() -> Directory:
    """``examples/network.toml`` with in-memory certificates."""
    return compile_directory(NETWORK_TOML.read_text(encoding="utf-8"), read_in_memory, now=ISSUED)


def refused(directory: Directory, sender: str, recipients: list[str], classification: Classification) -> RouteError:
    """The ``RouteError`` that ``plan`` raises for this request."""
    with pytest.raises(RouteError) as info:
        plan(directory, sender, recipients, classification)
    return info.value


# --- the example network --------------------------------------------------------------------------------------


def test_the_secret_request_avoids_the_shorter_public_link(example: Directory) -> None:
    """examples/request.toml: 秘密 from gd.gov.czt to gd.gov.office. One hop over 外网 exists; it may not be taken."""
    assert example.link_between("gd-czt", "gd-hub") == Link("gd-czt", "gd-hub", PUBLIC)
    secret = plan(example, "gd-czt", ["gd.gov.office"], SEC)
    assert secret.path("gd.gov.office") == ("gd-czt", "gd-gxt", "gd-hub")
    assert format_path(example, secret.path("gd.gov.office")) == "gd-czt —专网→ gd-gxt —内网→ gd-hub"
    internal = plan(example, "gd-czt", ["gd.gov.office"], INT)
    assert internal.path("gd.gov.office") == ("gd-czt", "gd-hub")  # 内部 may take the public shortcut


def test_the_notice_fans_out_at_each_hub(example: Directory) -> None:
    """examples/notice.toml: 内部, from the provincial hub to five departments on five nodes."""
    recipients = ["gd.gov.czt", "gd.gov.gxt", "gz.gov.office", "gz.gov.czj", "sz.gov.office"]
    routes = plan(example, "gd-hub", recipients, INT)
    assert routes.recipients == tuple(recipients)
    assert dict(routes.next_hops("gd-hub")) == {
        "gd-czt": ("gd.gov.czt",),
        "gd-gxt": ("gd.gov.gxt",),
        "gz-hub": ("gz.gov.office", "gz.gov.czj", "sz.gov.office"),
    }
    assert dict(routes.next_hops("gz-hub")) == {"gz-czj": ("gz.gov.czj",), "sz-gov": ("sz.gov.office",)}
    assert routes.delivered_at("gz-hub") == ("gz.gov.office",)
    assert dict(routes.next_hops("sz-gov")) == {}
    assert routes.local_recipients == ()
    assert len(routes.edges) == 5  # one crossing per link of the tree, not one per recipient


def test_joint_notice_travels_once_over_the_shared_path(example: Directory) -> None:
    """examples/joint-notice.toml: 内部 from gd.gov.czt to two city departments, sharing three nodes."""
    routes = plan(example, "gd-czt", ["gz.gov.office", "sz.gov.office"], INT)
    assert routes.path("gz.gov.office") == ("gd-czt", "gd-hub", "gz-hub")
    assert routes.path("sz.gov.office") == ("gd-czt", "gd-hub", "gz-hub", "sz-gov")
    assert dict(routes.next_hops("gd-czt")) == {"gd-hub": ("gz.gov.office", "sz.gov.office")}
    assert dict(routes.next_hops("gd-hub")) == {"gz-hub": ("gz.gov.office", "sz.gov.office")}
    assert dict(routes.next_hops("gz-hub")) == {"sz-gov": ("sz.gov.office",)}
    assert routes.delivered_at("gz-hub") == ("gz.gov.office",)
    assert routes.edges == (("gd-czt", "gd-hub"), ("gd-hub", "gz-hub"), ("gz-hub", "sz-gov"))


@pytest.mark.parametrize(
    ("classification", "reachable"), [(PUB, True), (INT, True), (SEC, False), (CONF, False), (TOP, False)]
)
def test_a_public_network_node_receives_only_what_public_networks_carry(
    example: Directory, classification: Classification, reachable: bool
) -> None:
    """Sent from gd-gxt, an internal node that may hold every 密级 itself."""
    if reachable:
        assert plan(example, "gd-gxt", ["sz.gov.office"], classification).path("sz.gov.office") == (
            "gd-gxt",
            "gd-hub",
            "gz-hub",
            "sz-gov",
        )
        return
    error = refused(example, "gd-gxt", ["sz.gov.office"], classification)
    assert set(error.reasons) == {"sz.gov.office"}
    message = str(error)
    assert "sz.gov.office" in message and "sz-gov" in message and "外网" in message and "内部" in message


def test_top_secret_is_blocked_by_the_private_network_and_the_message_names_it(example: Directory) -> None:
    error = refused(example, "gd-gxt", ["gz.gov.czj"], TOP)
    assert str(error) == (
        "gz.gov.czj：没有可传输绝密文件的路由：从 gd-gxt 到 gz-czj 的每条路径都经过专网（专网最高只能传输机密文件）"
    )
    assert isinstance(error, InputError)
    local = plan(example, "gd-gxt", ["gd.gov.gxt"], TOP)  # gd-gxt is an internal node: it may hold 绝密 itself
    assert local.local_recipients == ("gd.gov.gxt",)


def test_a_sending_node_whose_zone_cannot_carry_the_document_is_refused(example: Directory) -> None:
    error = refused(example, "gd-czt", ["gd.gov.office"], TOP)
    assert set(error.reasons) == {"gd-czt"}
    assert "发送节点位于专网" in str(error) and "绝密" in str(error)


def test_every_unreachable_recipient_is_named_at_once(example: Directory) -> None:
    error = refused(example, "gd-czt", ["gd.gov.office", "sz.gov.office", "xx.gov.none", "gz.gov.czj"], SEC)
    assert list(error.reasons) == ["sz.gov.office", "xx.gov.none"]
    assert "不在交换目录中" in error.reasons["xx.gov.none"]


# --- rules, on small networks ---------------------------------------------------------------------------------


@pytest.mark.parametrize("zone", list(Zone))
@pytest.mark.parametrize("classification", list(Classification))
def test_each_zone_carries_up_to_its_limit(zone: Zone, classification: Classification) -> None:
    """A link in ``zone`` between two internal nodes, then an internal link through a relay in ``zone``."""
    allowed = classification.rank <= EXAMPLE_POLICY.limit(zone).rank
    over_link = network({"s": INTERNAL, "t": INTERNAL}, [("s", "t", zone)], {"t.gov.test": "t"})
    through_node = network(
        {"s": INTERNAL, "r": zone, "t": INTERNAL}, [("s", "r", INTERNAL), ("r", "t", INTERNAL)], {"t.gov.test": "t"}
    )
    for directory, expected in ((over_link, ("s", "t")), (through_node, ("s", "r", "t"))):
        if allowed:
            assert plan(directory, "s", ["t.gov.test"], classification).path("t.gov.test") == expected
        else:
            error = refused(directory, "s", ["t.gov.test"], classification)
            assert f"都经过{zone}" in str(error) and "t.gov.test" in str(error)


def test_fewest_hops_first_then_the_smallest_node_ids() -> None:
    zones = {n: PRIVATE for n in ("s", "a", "b", "c", "x", "t", "u")}
    links = [("s", "b", PRIVATE), ("s", "a", PRIVATE), ("b", "t", PRIVATE), ("a", "t", PRIVATE)]
    assert plan(network(zones, links, {"t.gov.test": "t"}), "s", ["t.gov.test"], SEC).path("t.gov.test") == (
        "s",
        "a",
        "t",
    )
    # The order links are written in does not matter.
    reversed_links = network(zones, reversed(links), {"t.gov.test": "t"})
    assert plan(reversed_links, "s", ["t.gov.test"], SEC).path("t.gov.test") == ("s", "a", "t")
    # Fewer hops win over smaller ids: a → x → u is longer than c → u.
    longer = [("s", "a", PRIVATE), ("a", "x", PRIVATE), ("x", "u", PRIVATE), ("s", "c", PRIVATE), ("c", "u", PRIVATE)]
    assert plan(network(zones, longer, {"u.gov.test": "u"}), "s", ["u.gov.test"], SEC).path("u.gov.test") == (
        "s",
        "c",
        "u",
    )


def test_paths_that_tie_share_their_prefix_so_the_tree_stays_a_tree() -> None:
    """Two recipients behind a diamond: both go the same way round, and split only at the end."""
    zones = {n: PRIVATE for n in ("s", "a", "b", "m", "t1", "t2")}
    links = [("s", "a", PRIVATE), ("s", "b", PRIVATE), ("a", "m", PRIVATE), ("b", "m", PRIVATE)]
    links += [("m", "t1", PRIVATE), ("m", "t2", PRIVATE)]
    routes = plan(
        network(zones, links, {"t1.gov.test": "t1", "t2.gov.test": "t2"}), "s", ["t2.gov.test", "t1.gov.test"], SEC
    )
    assert dict(routes.next_hops("s")) == {"a": ("t2.gov.test", "t1.gov.test")}
    assert dict(routes.next_hops("a")) == {"m": ("t2.gov.test", "t1.gov.test")}
    assert dict(routes.next_hops("m")) == {"t1": ("t1.gov.test",), "t2": ("t2.gov.test",)}
    assert dict(routes.next_hops("b")) == {}


def test_local_recipients_need_no_hop() -> None:
    directory = network(
        {"s": PRIVATE, "t": PRIVATE}, [("s", "t", PRIVATE)], {"s.gov.a": "s", "s.gov.b": "s", "t.gov.c": "t"}
    )
    routes = plan(directory, "s", ["s.gov.a", "t.gov.c", "s.gov.b"], CONF)
    assert routes.local_recipients == ("s.gov.a", "s.gov.b")
    assert routes.path("s.gov.a") == ("s",) and routes.hops("s.gov.a") == 0
    assert dict(routes.next_hops("s")) == {"t": ("t.gov.c",)}
    only_local = plan(directory, "s", ["s.gov.a"], CONF)
    assert only_local.edges == () and dict(only_local.next_hops("s")) == {}


def test_no_path_at_all_is_told_apart_from_no_permitted_path() -> None:
    directory = network(
        {"s": INTERNAL, "t": INTERNAL, "island": INTERNAL},
        [("s", "t", PUBLIC)],
        {"i.gov.test": "island", "t.gov.test": "t"},
    )
    error = refused(directory, "s", ["i.gov.test", "t.gov.test"], SEC)
    assert error.reasons["i.gov.test"] == "交换目录中没有从 s 到 island 的任何路径"
    assert "每条路径都经过外网（外网最高只能传输内部文件）" in error.reasons["t.gov.test"]


def test_when_two_zones_block_together_both_are_named() -> None:
    directory = network(
        {"s": INTERNAL, "m": INTERNAL, "t": INTERNAL},
        [("s", "m", PRIVATE), ("m", "t", PUBLIC)],
        {"t.gov.test": "t"},
    )
    error = refused(directory, "s", ["t.gov.test"], TOP)
    assert "都经过专网和外网" in str(error)
    parallel = network(
        {"s": INTERNAL, "a": INTERNAL, "b": INTERNAL, "t": INTERNAL},
        [("s", "a", PRIVATE), ("a", "t", PRIVATE), ("s", "b", PUBLIC), ("b", "t", PUBLIC)],
        {"t.gov.test": "t"},
    )
    assert "都经过专网 或 外网" in str(refused(parallel, "s", ["t.gov.test"], TOP))


def test_malformed_requests() -> None:
    directory = network({"s": PRIVATE}, [], {"s.gov.test": "s"})
    assert "发送节点不在交换目录中" in str(refused(directory, "nowhere", ["s.gov.test"], PUB))
    assert "重复" in str(refused(directory, "s", ["s.gov.test", "s.gov.test"], PUB))
    with pytest.raises(ConfigError):
        plan(directory, "s", ["s.gov.test"], "秘密")  # type: ignore[arg-type]
    assert plan(directory, "s", [], PUB).recipients == ()


def test_a_plan_is_a_tree_rooted_at_the_sender() -> None:
    with pytest.raises(ConfigError, match="does not start"):
        RoutePlan("s", PUB, {"t.gov.test": ("a", "t")})
    with pytest.raises(ConfigError, match="two nodes"):
        RoutePlan("s", PUB, {"x.gov.test": ("s", "a", "t"), "y.gov.test": ("s", "b", "t")})
    with pytest.raises(ConfigError, match="twice"):
        RoutePlan("s", PUB, {"x.gov.test": ("s", "a", "s")})
    routes = RoutePlan("s", PUB, {"x.gov.test": ["s", "a"]})  # type: ignore[dict-item]
    assert routes.path("x.gov.test") == ("s", "a")
    with pytest.raises(TypeError):
        routes.paths["y.gov.test"] = ("s",)  # type: ignore[index]


# --- property: random networks against a reference search ------------------------------------------------------

NODE_IDS = [f"n{i}" for i in range(7)]
CODES = [f"d{i}.gov.test" for i in range(7)]


@st.composite
def random_networks(draw: st.DrawFn) -> tuple[Directory, str, list[str], Classification]:
    """A random tree over the nodes plus a few extra links, so that paths are often long and sometimes tie; zones
    and a policy that permit most of what they meet; recipients anywhere."""
    count = draw(st.integers(min_value=2, max_value=len(NODE_IDS)))
    ids = draw(st.permutations(NODE_IDS))[:count]
    zones = {n: draw(st.sampled_from(list(Zone))) for n in ids}
    # Each node hangs on one of the two before it: deep trees, long paths; extra links make ties and shortcuts.
    pairs = {tuple(sorted((n, draw(st.sampled_from(ids[max(0, i - 2) : i]))))) for i, n in enumerate(ids) if i}
    others = [p for p in itertools.combinations(sorted(ids), 2) if p not in pairs]
    pairs |= set(draw(st.lists(st.sampled_from(others), unique=True, max_size=3))) if others else set()
    links = [(a, b, draw(st.sampled_from(list(Zone)))) for a, b in sorted(pairs)]
    # The sender is the first node, homes are drawn last-first: hypothesis' simplest draws are far apart.
    homes = {code: draw(st.sampled_from(ids[::-1])) for code in CODES[: draw(st.integers(1, len(CODES)))]}
    policy = ZonePolicy({z: draw(st.sampled_from([INT, SEC, CONF, TOP])) for z in Zone})
    classification = draw(st.sampled_from(list(Classification)))
    sender = ids[0]
    recipients = draw(st.lists(st.sampled_from(list(homes)), unique=True, min_size=1, max_size=len(homes)))
    return network(zones, links, homes, policy), sender, recipients, classification


def reference_distances(directory: Directory, start: str, classification: Classification) -> dict[str, int]:
    """Plain BFS over the permitted graph, written independently of the code under test."""
    ok = directory.policy.allows
    if not ok(directory.node(start).zone, classification):
        return {}
    distance = {start: 0}
    queue = deque([start])
    while queue:
        here = queue.popleft()
        for link in directory.links:
            if here in link.nodes and ok(link.zone, classification):
                there = link.other(here)
                if there not in distance and ok(directory.node(there).zone, classification):
                    distance[there] = distance[here] + 1
                    queue.append(there)
    return distance


@settings(max_examples=300, deadline=None)
@given(random_networks())
def test_planned_paths_are_permitted_shortest_and_least(case: tuple[Directory, str, list[str], Classification]) -> None:
    directory, sender, recipients, classification = case
    allows = directory.policy.allows
    from_sender = reference_distances(directory, sender, classification)
    homes = {code: directory.department(code).home_node for code in recipients}
    unreachable = {code for code, home in homes.items() if home not in from_sender}
    sender_blocked = not allows(directory.node(sender).zone, classification)

    # --hypothesis-show-statistics shows how the cases spread: they must not all be trivial.
    longest = max((from_sender.get(home, 0) for home in homes.values()), default=0)
    event("refused" if sender_blocked or unreachable else f"planned, longest path {longest} hops")
    if sender_blocked or unreachable:
        error = refused(directory, sender, recipients, classification)
        assert set(error.reasons) == ({sender} if sender_blocked else unreachable)
        return

    routes = plan(directory, sender, recipients, classification)
    assert routes.recipients == tuple(recipients)
    for code, home in homes.items():
        path = routes.path(code)
        assert path[0] == sender and path[-1] == home
        assert all(allows(directory.node(n).zone, classification) for n in path)
        for a, b in itertools.pairwise(path):
            link = directory.link_between(a, b)
            assert link is not None and allows(link.zone, classification)
        assert len(path) - 1 == from_sender[home]  # no longer than the reference BFS (and so exactly as long)
        # The tie-break: from each node, the smallest neighbour that is still on a shortest path to the home.
        to_home = reference_distances(directory, home, classification)
        expected = [sender]
        while expected[-1] != home:
            expected.append(
                min(
                    other
                    for other, link in directory.neighbours(expected[-1])
                    if allows(link.zone, classification) and to_home.get(other) == to_home[expected[-1]] - 1
                )
            )
        assert path == tuple(expected)
    # Fan-out: at every node of the tree, each recipient passing it goes on to exactly one next node.
    for at in routes.nodes:
        onward = routes.next_hops(at)
        passing = [code for code in recipients if at in routes.path(code)[:-1]]
        assert sorted(c for codes in onward.values() for c in codes) == sorted(passing)
        assert list(onward) == sorted(onward)
