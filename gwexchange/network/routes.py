"""Routes from a directory: the shortest permitted path to each recipient, and the fan-out tree they form.

``plan(directory, sender_node, recipients, classification)`` finds, for each recipient department, a path from
the sending node to the recipient's home node that uses only nodes and links whose zone may carry the document's
密级 (``ZonePolicy.allows``): the sending node itself, every relay, every link and the home node. Among the
permitted paths it takes one with the fewest hops; among those, the one whose sequence of node ids is smallest
(compared id by id from the sender) — a breadth-first search that visits neighbours in order of node id finds
exactly that one. A recipient whose home node is the sending node needs no hop.

All paths come from one search, so together they form a tree rooted at the sending node: an envelope for several
recipients travels once over the path they share and splits where their paths divide. ``RoutePlan.next_hops``
gives, at any node of the tree, the next nodes and the recipients to send on to each; ``delivered_at`` the
recipients that node delivers itself. The plan depends only on the directory, the sending node, the recipients
and the 密级 — all in the envelope's header — so a relay that computes it again from the header (not from
itself) finds the same tree, and every hop agrees without the route travelling in the envelope.

When some recipient cannot be reached, ``plan`` raises one ``RouteError`` naming every such recipient and why:
it is not in the directory; its home node sits in a zone that may not carry the 密级; no path exists at all; or
paths exist but every one passes a zone that may not carry the 密级 — named, with its limit. Nothing is queued.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from gwexchange.envelope.model import Classification
from gwexchange.errors import ConfigError, RouteError
from gwexchange.network.directory import Directory, Zone


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """For each recipient, the nodes from the sending node to its home node (both included); a tree."""

    sender_node: str
    classification: Classification
    paths: Mapping[str, tuple[str, ...]]

    def __post_init__(self) -> None:
        paths = {code: tuple(path) for code, path in self.paths.items()}
        parent: dict[str, str] = {}
        for code, path in paths.items():
            if not path or path[0] != self.sender_node:
                raise ConfigError(f"the route to {code} does not start at the sending node {self.sender_node}")
            if len(set(path)) != len(path):
                raise ConfigError(f"the route to {code} passes a node twice")
            for before, after in itertools.pairwise(path):
                if parent.setdefault(after, before) != before:
                    raise ConfigError(f"the routes reach {after} from two nodes: they do not form a tree")
        if self.sender_node in parent:
            raise ConfigError("a route returns to the sending node")
        object.__setattr__(self, "paths", MappingProxyType(paths))

    @property
    def recipients(self) -> tuple[str, ...]:
        return tuple(self.paths)

    def path(self, recipient: str) -> tuple[str, ...]:
        return self.paths[recipient]

    def hops(self, recipient: str) -> int:
        return len(self.paths[recipient]) - 1

    @property
    def local_recipients(self) -> tuple[str, ...]:
        """Recipients at the sending node itself: delivered without a hop."""
        return self.delivered_at(self.sender_node)

    def delivered_at(self, node: str) -> tuple[str, ...]:
        """Recipients whose home node is ``node``, in the order they were given."""
        return tuple(code for code, path in self.paths.items() if path[-1] == node)

    def next_hops(self, at_node: str) -> Mapping[str, tuple[str, ...]]:
        """Next node → the recipients to send on to it, for an envelope at ``at_node`` (ordered by node id).

        Empty at a node where every path ends, or that is on none.
        """
        onward: dict[str, list[str]] = {}
        for code, path in self.paths.items():
            if at_node in path[:-1]:
                onward.setdefault(path[path.index(at_node) + 1], []).append(code)
        return MappingProxyType({node: tuple(onward[node]) for node in sorted(onward)})

    @property
    def nodes(self) -> tuple[str, ...]:
        """Every node of the tree, the sending node first, then in order of first appearance."""
        return tuple(dict.fromkeys(node for path in self.paths.values() for node in path)) or (self.sender_node,)

    @property
    def edges(self) -> tuple[tuple[str, str], ...]:
        """Every hop of the tree once, as (from, to), in order of first appearance: the envelope crosses each once."""
        return tuple(dict.fromkeys(hop for path in self.paths.values() for hop in itertools.pairwise(path)))


def plan(
    directory: Directory,
    sender_node: str,
    recipients: Sequence[str],
    classification: Classification,
) -> RoutePlan:
    """The route to every recipient department, or ``RouteError`` naming each one that cannot be reached."""
    if not isinstance(classification, Classification):
        raise ConfigError(f"unknown 密级 {classification!r}")
    policy = directory.policy
    sender = directory.find_node(sender_node)
    if sender is None:
        raise RouteError({sender_node: "发送节点不在交换目录中"})
    if not policy.allows(sender.zone, classification):
        raise RouteError(
            {sender_node: f"发送节点位于{sender.zone}，{_limit(directory, sender.zone)}，不能发送{classification}文件"}
        )

    def permitted(zone: Zone) -> bool:
        return policy.allows(zone, classification)

    parents = _search(directory, sender_node, permitted)
    paths: dict[str, tuple[str, ...]] = {}
    reasons: dict[str, str] = {}
    for code in recipients:
        if code in paths or code in reasons:
            reasons[code] = "收文机关重复列出"
            continue
        dept = directory.find_department(code)
        if dept is None:
            reasons[code] = "不在交换目录中"
        elif dept.home_node in parents:
            paths[code] = _path_to(parents, dept.home_node)
        else:
            reasons[code] = _why_unreachable(directory, sender_node, dept.home_node, classification)
    if reasons:
        raise RouteError(reasons)
    return RoutePlan(sender_node=sender_node, classification=classification, paths=paths)


def _search(directory: Directory, source: str, permitted: Callable[[Zone], bool]) -> dict[str, str | None]:
    """Breadth-first from ``source`` over permitted nodes and links; neighbours in order of node id.

    The parent of each node reached lies on its fewest-hop path with the smallest sequence of node ids: within a
    level, nodes enter the queue in the order of their paths, so the first parent to reach a node is the least.
    """
    parents: dict[str, str | None] = {source: None}
    queue = deque([source])
    while queue:
        node = queue.popleft()
        for neighbour, link in directory.neighbours(node):
            if neighbour in parents or not permitted(link.zone) or not permitted(directory.node(neighbour).zone):
                continue
            parents[neighbour] = node
            queue.append(neighbour)
    return parents


def _path_to(parents: Mapping[str, str | None], node: str) -> tuple[str, ...]:
    path = [node]
    while (parent := parents[path[-1]]) is not None:
        path.append(parent)
    return tuple(reversed(path))


def _why_unreachable(directory: Directory, sender: str, home: str, classification: Classification) -> str:
    """Why no permitted path reaches ``home``, naming the zones that block it and their limits."""
    policy = directory.policy
    home_zone = directory.node(home).zone
    if not policy.allows(home_zone, classification):
        return f"其所在节点 {home} 位于{home_zone}，{_limit(directory, home_zone)}，不能接收{classification}文件"
    if home not in _search(directory, sender, lambda _: True):
        return f"交换目录中没有从 {sender} 到 {home} 的任何路径"
    allowed = {z for z in Zone if policy.allows(z, classification)}
    forbidden = [z for z in Zone if z not in allowed]
    for size in range(1, len(forbidden) + 1):
        openings = [
            combo
            for combo in itertools.combinations(forbidden, size)
            if home in _search(directory, sender, _within(allowed.union(combo)))
        ]
        if openings:
            blocking = " 或 ".join("和".join(combo) for combo in openings)
            zones = sorted({z for combo in openings for z in combo}, key=list(Zone).index)
            limits = "，".join(_limit(directory, z) for z in zones)
            return f"没有可传输{classification}文件的路由：从 {sender} 到 {home} 的每条路径都经过{blocking}（{limits}）"
    raise AssertionError("a path exists over all zones, so opening every forbidden zone finds it")  # pragma: no cover


def _within(zones: set[Zone]) -> Callable[[Zone], bool]:
    return lambda zone: zone in zones


def _limit(directory: Directory, zone: Zone) -> str:
    return f"{zone}最高只能传输{directory.policy.limit(zone)}文件"


def format_path(directory: Directory, path: Iterable[str]) -> str:
    """``gd-czt —专网→ gd-gxt —内网→ gd-hub``: the nodes of a path with the zone of each link."""
    nodes = list(path)
    parts = [nodes[0]] if nodes else []
    for before, after in itertools.pairwise(nodes):
        link = directory.link_between(before, after)
        parts.append(f"—{link.zone if link else '?'}→ {after}")
    return " ".join(parts)


__all__ = [
    "RoutePlan",
    "format_path",
    "plan",
]
