"""What a KV node does for each API request, independent of HTTP: ``KVService`` turns a
parsed request into calls on the node's ``Raft`` handle and its state machine, and returns
the ``Ok`` value of the answer (or raises the error the answer carries, ``fastraft.kv.api``;
their JSON: ``fastraft.kv.answers``).

Writes and linearizable reads are served by the leader only; any other node raises
ForwardToLeader before doing anything, so a client may resend the request to the leader.
Every wait is bounded: a write that is not answered within ``write_timeout_s`` ends with
OutcomeUnknown (its entry may still commit: ``write_late``), a consistent read with
Unavailable (``read_late``). Those two bounds are kept by the caller, ``KVHandler``
(``time_limit``), so that the node's HTTP server can keep them without a cancel scope per
request (``fastraft.kv.http_server``); the admin requests keep their own.

Admin requests name nodes by their HTTP address. A node's Raft address, when not given, is
learned from the node itself (``GET /node``), which also proves that the address reaches the
node with that id and the same kind of Raft network.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Awaitable, Callable

import trio

from ..errors import ForwardToLeader, OutcomeUnknown
from ..types import Node
from .answers import log_id_json, membership_json, metrics_json
from .api import BadRequest, Unavailable, api_addr_of, make_node
from .commands import encode_command
from .read_rounds import ReadRounds

__all__ = ["NodeInfo", "KVService", "fetch_node_info"]


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """Who a KV node is: its id, HTTP address, Raft address and Raft network ("tcp" or
    "http"; with "http" the Raft address is the HTTP address)."""

    node_id: int
    addr: str
    raft_addr: str
    network: str

    def to_json(self) -> dict:
        return {"id": self.node_id, "addr": self.addr, "raft_addr": self.raft_addr,
                "network": self.network}

    @property
    def node(self) -> Node:
        return make_node(self.addr, self.raft_addr)


#: Learns the NodeInfo answered at an HTTP address (``fetch_node_info`` by default).
NodeInfoFetcher = Callable[[str], Awaitable[dict]]


async def fetch_node_info(addr: str, timeout_s: float = 3.0, tls_context=None) -> dict:
    """``GET http://addr/node`` (https with ``tls_context``, an ``ssl.SSLContext`` holding
    this node's certificate) and return its Ok value; BadRequest if the node cannot be
    reached or does not answer as a KV node."""
    import httpx  # the kv extra; imported here so that the rest of the module does not need it

    scheme = "https" if tls_context is not None else "http"
    try:
        async with httpx.AsyncClient(timeout=timeout_s, trust_env=False,
                                     verify=tls_context or True) as client:
            response = await client.get(f"{scheme}://{addr}/node")
        doc = json.loads(response.content)
        return doc["Ok"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as e:
        raise BadRequest(f"cannot learn the raft address of the node at {addr} "
                         f"({type(e).__name__}: {e}); give it as [id, addr, raft_addr]") from None


class KVService:
    """The API of one KV node over its ``raft`` handle and ``state_machine`` (anything with
    ``get(key)``). ``info`` describes this node."""

    def __init__(self, raft, state_machine, info: NodeInfo, *, write_timeout_s: float = 10.0,
                 read_timeout_s: float = 10.0, admin_timeout_s: float = 120.0,
                 fetch_info: NodeInfoFetcher = fetch_node_info) -> None:
        self.raft = raft
        self.state_machine = state_machine
        self.info = info
        self.write_timeout_s = write_timeout_s
        self.read_timeout_s = read_timeout_s
        self.admin_timeout_s = admin_timeout_s
        self._fetch_info = fetch_info
        self.refused: dict = {}  # requests the API refused, by reason (set by its handler)
        self._read_rounds = ReadRounds(raft.ensure_linearizable, read_timeout_s)

    # -- application API ----------------------------------------------------------------------

    async def write(self, command) -> dict:
        """Append ``command`` and return ``{"log_id", "data"}`` once it is applied here.
        The caller bounds the wait (``write_timeout_s``; see the module docstring)."""
        # client_write itself refuses on a follower (ForwardToLeader) before appending
        written = await self.raft.client_write(encode_command(command))
        # this node appended the entry as leader of its term
        log_id = written.log_id
        return {"log_id": {"leader_id": {"term": log_id.term, "node_id": self.info.node_id},
                           "index": log_id.index},
                "data": written.data}

    def write_late(self) -> OutcomeUnknown:
        """The error of a write not answered within ``write_timeout_s``."""
        return OutcomeUnknown(f"the write was not answered within {self.write_timeout_s} s; "
                              "it may still commit")

    async def read(self, key: str) -> str | None:
        """The value in this node's applied state: it may lag the leader (a stale read)."""
        return self.state_machine.get(key)

    async def consistent_read(self, key: str) -> str | None:
        """A linearizable read (ReadIndex, thesis §6.4): leader only (ForwardToLeader).
        Reads that arrive together share one ReadIndex round (``ReadRounds``, which bounds
        the round by ``read_timeout_s``); the caller bounds the wait as a whole."""
        await self._read_rounds.wait()
        return self.state_machine.get(key)

    def read_late(self) -> Unavailable:
        """The error of a consistent read not answered within ``read_timeout_s``."""
        return Unavailable(f"leadership not confirmed within {self.read_timeout_s} s; retry")

    # -- admin API ------------------------------------------------------------------------------

    def node_info(self) -> dict:
        return self.info.to_json()

    def metrics(self) -> dict:
        """``metrics_json`` of the node, with the API's own counters: ``read_rounds``
        (ReadIndex rounds begun for consistent reads, and the reads they served) and
        ``refused_requests`` (403s of the HTTPS API, by reason)."""
        return {**metrics_json(self.raft.metrics()),
                "read_rounds": {"rounds": self._read_rounds.started,
                                "reads": self._read_rounds.reads},
                "refused_requests": dict(self.refused)}

    @property
    def read_rounds(self) -> int:
        """How many ReadIndex rounds this node's consistent reads have started."""
        return self._read_rounds.started

    @property
    def consistent_reads(self) -> int:
        """How many consistent reads waited for a ReadIndex round."""
        return self._read_rounds.reads

    async def init(self, members: list[tuple[int, str, str | None]]) -> None:
        """Initialize the cluster with ``members`` (this node alone when empty)."""
        if not members:
            nodes = {self.info.node_id: self.info.node}
        else:
            if self.info.node_id not in [m[0] for m in members]:
                raise BadRequest(f"this node ({self.info.node_id}) must be one of the members "
                                 "it initializes")
            nodes = {}
            for node_id, addr, raft_addr in members:
                nodes[node_id] = await self._resolve(node_id, addr, raft_addr)
        await self._admin(self.raft.initialize(nodes))
        return None

    async def add_learner(self, node_id: int, addr: str, raft_addr: str | None) -> dict:
        """Add ``node_id`` as a learner; returns once it has caught up with the leader."""
        self._require_leader()
        node = await self._resolve(node_id, addr, raft_addr)
        log_id = await self._admin(self.raft.add_learner(node_id, node, blocking=True))
        return self._membership_answer(log_id)

    async def change_membership(self, voters: frozenset[int]) -> dict:
        """Make ``voters`` the voter set (joint consensus); members not in it leave."""
        self._require_leader()
        known = self.raft.metrics().membership.membership.nodes
        unknown = sorted(v for v in voters if v not in known)
        if unknown:
            raise BadRequest(f"node ids {unknown} are not members; add them with /add-learner "
                             f"first (members: {sorted(known)})")
        log_id = await self._admin(self.raft.change_membership(voters))
        return self._membership_answer(log_id)

    async def remove_learner(self, node_ids: frozenset[int]) -> dict:
        """Drop the learners ``node_ids`` (voters leave through change_membership)."""
        self._require_leader()
        log_id = await self._admin(self.raft.remove_learners(node_ids))
        return self._membership_answer(log_id)

    # -- helpers ----------------------------------------------------------------------------------

    def _require_leader(self) -> None:
        m = self.raft.metrics()
        if not m.is_leader:
            leader = m.current_leader
            node = m.membership.membership.nodes.get(leader) if leader is not None else None
            raise ForwardToLeader(leader, node)

    async def _admin(self, call: Awaitable):
        with trio.move_on_after(self.admin_timeout_s):
            return await call
        raise OutcomeUnknown(f"the membership request was not answered within "
                             f"{self.admin_timeout_s} s; it may still take effect")

    def _membership_answer(self, log_id) -> dict:
        m = self.raft.metrics()
        return {"log_id": log_id_json(log_id, self.info.node_id),
                "membership": membership_json(m.membership, lambda t: None)}

    async def _resolve(self, node_id: int, addr: str, raft_addr: str | None) -> Node:
        """The membership record of ``node_id`` at ``addr``."""
        if node_id == self.info.node_id:
            if addr != self.info.addr:
                raise BadRequest(f"node {node_id} is this node, at {self.info.addr}, not {addr}")
            return self.info.node
        if raft_addr is not None:
            if self.info.network == "http" and raft_addr != addr:
                raise BadRequest("with the HTTP raft network a node's raft address is its "
                                 f"address: {addr}, not {raft_addr}")
            return make_node(addr, raft_addr)
        info = await self._fetch_info(addr)
        if not isinstance(info, dict):
            raise BadRequest(f"the node at {addr} answered /node with {info!r}")
        if info.get("id") != node_id:
            raise BadRequest(f"the node at {addr} is node {info.get('id')}, not {node_id}")
        if info.get("network") != self.info.network:
            raise BadRequest(f"the node at {addr} uses the {info.get('network')} raft network, "
                             f"this cluster the {self.info.network} one")
        learned = info.get("raft_addr")
        if not isinstance(learned, str) or not learned:
            raise BadRequest(f"the node at {addr} did not say its raft address")
        return make_node(addr, learned)


def leader_addr(metrics) -> str | None:
    """The HTTP address of the leader this node knows of, from its ``RaftMetrics``."""
    leader = metrics.current_leader
    node = metrics.membership.membership.nodes.get(leader) if leader is not None else None
    return api_addr_of(node) if node is not None else None
