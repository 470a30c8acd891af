"""``KVClient``: the KV store's client, on trio and httpx (the guide's ExampleClient).

    async with KVClient(["127.0.0.1:21001", "127.0.0.1:21002"]) as client:
        await client.init()                                   # node 1 alone
        await client.add_learner(2, "127.0.0.1:21002")
        await client.change_membership([1, 2])
        result = await client.write(Set("foo", "bar"))         # a WriteResult
        assert await client.consistent_read("foo") == "bar"

Requests that need the leader (writes, linearizable reads, membership changes) go to the
node the client believes leads. An answer ForwardToLeader (nothing was appended) sends the
request on to the leader it names, or to the next known node when none is named; a node that
cannot be reached is skipped. Retries pause with a backoff that doubles from
``backoff_min_s`` to ``backoff_max_s``, and stop at ``deadline_s`` after the call began:
``ClusterUnavailable`` then names the last thing that went wrong.

What is never retried, because it could apply a write twice: OutcomeUnknown (the write was
appended and may still commit), and for a write any failure after the request left (the
connection broke before the answer): that also raises OutcomeUnknown. Reads are retried on
any failure. BadRequest, Forbidden and MembershipError are raised at once (retrying cannot
help).

HTTPS: ``tls=client_tls_context(cacert, cert, key)`` (the CLI's ``--cacert --cert --key``, as
etcdctl takes them) talks HTTPS to every node, trusting only the cluster's CA and showing the
client's certificate (its role decides what the nodes allow: ``fastraft.kv.access``).
"""

from __future__ import annotations

import json
import random
import ssl
from typing import Iterable, Mapping, Sequence

import httpx
import trio

from ..errors import FastraftError, ForwardToLeader, OutcomeUnknown
from .answers import error_from_json, write_result_from_json
from .api import APIError, Fatal, Unavailable, WriteResult, api_addr_of, check_addr
from .commands import CompareAndSwap, Delete, Set, encode_command

__all__ = ["KVClient", "ClusterUnavailable", "client_tls_context"]

#: Attempts of one call at most, whatever the deadline (each waits for an answer or a backoff).
MAX_ATTEMPTS = 1000


class ClusterUnavailable(FastraftError, TimeoutError):
    """No node served the request before the call's deadline. ``last_error`` is the last
    failure seen. For a write, nothing was appended (else OutcomeUnknown is raised)."""

    def __init__(self, message: str, last_error: BaseException | None = None) -> None:
        self.last_error = last_error
        super().__init__(message)


def client_tls_context(cacert: str, cert: str | None = None,
                       key: str | None = None) -> ssl.SSLContext:
    """An ``ssl`` context for ``KVClient(tls=...)``: nodes must show a certificate the CA in
    ``cacert`` signed for a server (a node certificate); ``cert``/``key`` are the client's own
    (without them, only nodes that let anonymous loopback clients in will answer). Host names
    are not checked: a node's identity is the CA's signature and the node URI it carries, and
    its address may change (as between the nodes, ``fastraft.net.tls``). ValueError for
    files that cannot be loaded."""
    if (cert is None) != (key is None):
        raise ValueError("a client certificate needs its key, and a key its certificate")
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cacert)
        if cert is not None:
            ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as e:
        raise ValueError(f"cannot load the TLS files (CA {cacert}, certificate {cert}, key "
                         f"{key}): {e}") from None
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


class _NotSent(Exception):
    """The request never reached the node (it could not be reached)."""


class _Lost(Exception):
    """The request left but no answer came back (connection broken, timeout)."""


class KVClient:
    """A client of the cluster whose nodes answer at ``addrs`` (HTTP ``host:port``; more are
    learned from ForwardToLeader answers). Use as an async context manager, or ``aclose()``.

    ``deadline_s`` bounds each call, retries included; ``request_timeout_s`` one HTTP request.
    ``tls``: an ``ssl.SSLContext`` (``client_tls_context``) to speak HTTPS.
    """

    def __init__(self, addrs: str | Sequence[str], *, deadline_s: float = 10.0,
                 request_timeout_s: float = 5.0, admin_timeout_s: float = 120.0,
                 backoff_min_s: float = 0.02, backoff_max_s: float = 0.5,
                 max_connections: int = 128, tls: ssl.SSLContext | None = None) -> None:
        addrs = [addrs] if isinstance(addrs, str) else list(addrs)
        if not addrs:
            raise ValueError("KVClient needs at least one node address")
        for a in addrs:
            check_addr(a)
        if deadline_s <= 0 or request_timeout_s <= 0 or not 0 < backoff_min_s <= backoff_max_s:
            raise ValueError("need deadline_s > 0, request_timeout_s > 0 and "
                             "0 < backoff_min_s <= backoff_max_s")
        self.addrs: list[str] = addrs
        self.leader_addr: str | None = None  #: where the client sends leader requests first
        self.deadline_s = deadline_s
        self.request_timeout_s = request_timeout_s
        self.admin_timeout_s = admin_timeout_s
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self._next = 0
        self._scheme = "https" if tls is not None else "http"
        self._http = httpx.AsyncClient(
            trust_env=False, timeout=request_timeout_s, verify=tls if tls is not None else True,
            limits=httpx.Limits(max_connections=max_connections,
                                max_keepalive_connections=max_connections))

    async def __aenter__(self) -> "KVClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True), trio.move_on_after(2.0):
            await self._http.aclose()

    # -- application API --------------------------------------------------------------------

    async def write(self, command: Set | Delete | CompareAndSwap, *, addr: str | None = None,
                    follow_leader: bool = True) -> WriteResult:
        """Apply ``command`` through the leader and return its ``WriteResult``. ``addr``
        picks the first node to send it to; with ``follow_leader=False`` a ForwardToLeader
        answer is raised instead of followed."""
        body = encode_command(command)
        doc = await self._call("POST", "/write", body, kind="write", addr=addr,
                               follow_leader=follow_leader)
        return write_result_from_json(doc)

    async def set(self, key: str, value: str) -> WriteResult:
        return await self.write(Set(key, value))

    async def delete(self, key: str) -> WriteResult:
        return await self.write(Delete(key))

    async def compare_and_swap(self, key: str, expected: str | None, value: str) -> WriteResult:
        """Set ``key`` to ``value`` if it holds ``expected`` (None: absent); the result's
        ``swapped`` says whether it did, ``value`` what the key holds now."""
        return await self.write(CompareAndSwap(key, expected, value))

    async def read(self, key: str, *, addr: str | None = None) -> str | None:
        """The value of ``key`` in one node's applied state (``addr``, default any node that
        answers): fast, and possibly stale. None when the key is absent."""
        return await self._call("POST", "/read", _json(key), kind="read", addr=addr,
                                follow_leader=False, pinned=addr is not None)

    async def consistent_read(self, key: str, *, addr: str | None = None,
                              follow_leader: bool = True) -> str | None:
        """A linearizable read of ``key``, served by the leader. None when absent."""
        return await self._call("POST", "/consistent_read", _json(key), kind="read", addr=addr,
                                follow_leader=follow_leader)

    # -- admin API --------------------------------------------------------------------------

    async def init(self, members: Mapping[int, str] | Iterable | None = None, *,
                   addr: str | None = None) -> None:
        """Initialize the cluster at ``addr`` (default: the first address): the node alone
        with no ``members``, else ``{id: "addr"}`` or ``[(id, addr[, raft_addr]), ...]``."""
        if members is None:
            doc = []
        elif isinstance(members, Mapping):
            doc = [[int(i), a] for i, a in sorted(members.items())]
        else:
            doc = [list(m) for m in members]
        await self._call("POST", "/init", _json(doc), kind="admin",
                         addr=addr or self.addrs[0], follow_leader=False, pinned=True)

    async def add_learner(self, node_id: int, addr: str, raft_addr: str | None = None) -> dict:
        """Add node ``node_id`` (HTTP ``addr``; its raft address is learned from it unless
        given) as a learner; returns once it has caught up: ``{"log_id", "membership"}``."""
        doc = [node_id, addr] if raft_addr is None else [node_id, addr, raft_addr]
        self._learn(addr)
        return await self._call("POST", "/add-learner", _json(doc), kind="admin")

    async def change_membership(self, voters: Iterable[int]) -> dict:
        """Make ``voters`` the voter set (members left out leave); ``{"log_id", "membership"}``."""
        return await self._call("POST", "/change-membership", _json(sorted(voters)), kind="admin")

    async def remove_learner(self, node_ids: Iterable[int]) -> dict:
        """Drop the learners ``node_ids`` from the membership; ``{"log_id", "membership"}``."""
        return await self._call("POST", "/remove-learner", _json(sorted(node_ids)), kind="admin")

    async def metrics(self, addr: str | None = None) -> dict:
        """The metrics of the node at ``addr`` (default: any node that answers), as JSON."""
        return await self._call("GET", "/metrics", b"", kind="read", addr=addr,
                                follow_leader=False, pinned=addr is not None)

    async def node_info(self, addr: str) -> dict:
        """Who the node at ``addr`` is: ``{"id", "addr", "raft_addr", "network"}``."""
        return await self._call("GET", "/node", b"", kind="read", addr=addr,
                                follow_leader=False, pinned=True)

    # -- the retry loop -----------------------------------------------------------------------

    def _learn(self, addr: str) -> None:
        if addr not in self.addrs:
            self.addrs.append(addr)

    def _rotate(self) -> str:
        addr = self.addrs[self._next % len(self.addrs)]
        self._next += 1
        return addr

    async def _call(self, method: str, path: str, body: bytes, *, kind: str,
                    addr: str | None = None, follow_leader: bool = True, pinned: bool = False):
        deadline_s = self.admin_timeout_s if kind == "admin" else self.deadline_s
        deadline = trio.current_time() + deadline_s
        target = addr or self.leader_addr or self._rotate()
        backoff = self.backoff_min_s
        last: BaseException | None = None
        for _ in range(MAX_ATTEMPTS):  # bounded in count, and by the deadline below
            pause = 0.0
            try:
                value = await self._once(method, target, path, body, kind, deadline)
                if follow_leader:
                    self.leader_addr = target  # it served a leader's request: it leads
                return value
            except ForwardToLeader as e:
                if not follow_leader:
                    raise
                last = e
                if e.leader_node is not None:
                    leader = api_addr_of(e.leader_node)
                    self._learn(leader)
                    if leader != target:
                        target = self.leader_addr = leader
                        continue  # straight to the leader it names
                target = self._rotate()
                pause = backoff  # no leader known yet (an election): wait a little
            except _NotSent as e:
                last = e.__cause__ or e
                if not pinned:
                    if self.leader_addr == target:
                        self.leader_addr = None
                    target = self._rotate()
                pause = backoff
            except (Unavailable, Fatal, _Lost) as e:
                if kind == "write" and isinstance(e, _Lost):
                    raise OutcomeUnknown(f"the connection to {target} broke before the answer "
                                         f"to the write ({e}); it may still commit") from None
                if kind != "read" and isinstance(e, Fatal):
                    raise
                last = e
                if isinstance(e, (Fatal, _Lost)) and not pinned:
                    target = self._rotate()
                pause = backoff
            backoff = min(self.backoff_max_s, backoff * 2)
            now = trio.current_time()
            if now + pause >= deadline:
                break
            await trio.sleep(pause * random.uniform(0.5, 1.0))
        raise ClusterUnavailable(f"{method} {path}: no node served it within {deadline_s} s; "
                                 f"last error: {type(last).__name__}: {last}", last)

    async def _once(self, method: str, addr: str, path: str, body: bytes, kind: str,
                    deadline: float):
        """One request to ``addr``: the Ok value, or the error its answer carries."""
        timeout = self.admin_timeout_s if kind == "admin" else self.request_timeout_s
        timeout = max(0.001, min(timeout, deadline - trio.current_time()))
        try:
            response = await self._http.request(
                method, f"{self._scheme}://{addr}{path}", content=body or None, timeout=timeout,
                headers={"content-type": "application/json"} if body else None)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as e:
            raise _NotSent(str(e)) from e
        except httpx.HTTPError as e:
            refusal = _tls_refusal(e)
            if refusal is not None:  # the node refused the handshake: it read no request
                raise _NotSent(f"TLS refused by {addr}: {refusal}") from refusal
            raise _Lost(f"{type(e).__name__}: {e}") from e
        try:
            doc = json.loads(response.content)
        except ValueError:
            raise APIError(f"{addr}{path} answered HTTP {response.status_code} with a body "
                           f"that is not JSON: {response.content[:200]!r}",
                           response.status_code, response.content) from None
        if isinstance(doc, dict) and "Ok" in doc and len(doc) == 1 and response.status_code == 200:
            return doc["Ok"]
        raise error_from_json(response.status_code, doc)


def _tls_refusal(error: BaseException) -> ssl.SSLError | None:
    """The TLS alert behind ``error``, if one is: with TLS 1.3 a server that refuses the
    client's certificate says so only when the client first reads, after it sent a request
    the server never decrypted."""
    seen = 0
    while error is not None and seen < 8:  # a bounded walk down the causes
        if isinstance(error, ssl.SSLError):
            return error
        error = error.__cause__ or error.__context__
        seen += 1
    return None


def _json(doc) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()

