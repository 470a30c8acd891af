"""In-process KV nodes for the API tests: real Raft nodes (``open_raft``) on a ``MemoryRouter``,
each with its ``KVService`` and ``KVApp``, reached through httpx's ASGI transport (the app
runs in the test's trio program, no sockets), under trio's MockClock so elections and
timeouts cost no wall time.

``KVTestCluster.post(i, path, doc)`` / ``get(i, path)`` return (status, JSON) from node i's
app. Node i's HTTP address is ``addr(i)``; ``/node`` lookups between nodes (learning a raft
address) go through the same apps, so the service code path is the one a server runs.
"""

from __future__ import annotations

import json

import httpx
import trio
import trio.testing

from fastraft.core import Config
from fastraft.kv.app import KVApp
from fastraft.kv.service import KVService, NodeInfo
from fastraft.kv.state_machine import MemoryKVStateMachine
from fastraft.net import MemoryRouter
from fastraft.runtime import ServerState, open_raft
from fastraft.storage import MemoryLogStore


def run(fn, *args):
    return trio.run(fn, *args, clock=trio.testing.MockClock(autojump_threshold=0))


def addr(i: int) -> str:
    return f"127.0.0.1:{21000 + i}"


def raft_addr(i: int) -> str:
    return f"127.0.0.1:{22000 + i}"


class KVTestCluster:
    """Nodes 1..n in ``nursery``; ``services[i]``, ``apps[i]``, ``sms[i]`` per node."""

    def __init__(self, nursery: trio.Nursery, config: Config = Config(), seed: int = 1,
                 write_timeout_s: float = 5.0) -> None:
        self.nursery = nursery
        self.config = config
        self.seed = seed
        self.write_timeout_s = write_timeout_s
        self.router = MemoryRouter(seed=seed)
        self.services: dict[int, KVService] = {}
        self.apps: dict[int, KVApp] = {}
        self.sms: dict[int, MemoryKVStateMachine] = {}
        self.http: dict[int, httpx.AsyncClient] = {}
        self._stops: dict[int, trio.Event] = {}

    async def fetch_info(self, target: str) -> dict:
        for i, app in self.apps.items():
            if addr(i) == target:
                status, doc = await self.get(i, "/node")
                return doc["Ok"]
        from fastraft.kv.api import BadRequest
        raise BadRequest(f"cannot learn the raft address of the node at {target} (unreachable)")

    async def start(self, i: int) -> None:
        inner = MemoryKVStateMachine()
        self.sms[i] = inner
        stop = self._stops[i] = trio.Event()

        async def node(task_status):
            async with open_raft(i, self.config, log_store=MemoryLogStore(),
                                 state_machine=inner,
                                 network=self.router.network(i), seed=self.seed * 100 + i) as raft:
                self.router.register(i, raft)
                info = NodeInfo(i, addr(i), raft_addr(i), "tcp")
                service = KVService(raft, inner, info, write_timeout_s=self.write_timeout_s,
                                    fetch_info=self.fetch_info)
                self.services[i] = service
                self.apps[i] = KVApp(service)
                self.http[i] = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.apps[i]),
                                                 base_url=f"http://{addr(i)}")
                task_status.started()
                try:
                    await stop.wait()
                finally:
                    self.router.unregister(i)
                    self.apps.pop(i, None)
                    self.services.pop(i, None)
                    await self.http.pop(i).aclose()

        await self.nursery.start(node)

    async def stop(self, i: int) -> None:
        self._stops[i].set()
        with trio.fail_after(10):
            while i in self.apps:
                await trio.sleep(0.01)

    async def stop_all(self) -> None:
        for i in list(self.apps):
            await self.stop(i)

    async def post(self, i: int, path: str, doc=None, *, raw: bytes | None = None):
        body = raw if raw is not None else json.dumps(doc).encode()
        r = await self.http[i].post(path, content=body)
        return r.status_code, json.loads(r.content)

    async def get(self, i: int, path: str):
        r = await self.http[i].get(path)
        return r.status_code, json.loads(r.content)

    def raft(self, i: int):
        return self.services[i].raft

    async def wait_leader(self, among, timeout_s: float = 10.0) -> int:
        with trio.fail_after(timeout_s):
            while True:  # bounded by fail_after
                leaders = [i for i in among if i in self.services
                           and self.raft(i).metrics().state is ServerState.LEADER]
                if len(leaders) == 1:
                    lid = leaders[0]
                    term = self.raft(lid).metrics().current_term
                    if all(self.raft(i).metrics().current_leader == lid
                           and self.raft(i).metrics().current_term == term for i in among):
                        return lid
                await trio.sleep(0.01)

    async def form(self, n: int = 3) -> int:
        """Start nodes 1..n and build the cluster through the API, as the guide does:
        init node 1, add the others as learners, change membership to all. Returns 1."""
        for i in range(1, n + 1):
            await self.start(i)
        status, doc = await self.post(1, "/init", [])
        assert (status, doc) == (200, {"Ok": None})
        await self.wait_leader([1])
        for i in range(2, n + 1):
            status, doc = await self.post(1, "/add-learner", [i, addr(i)])
            assert status == 200 and "Ok" in doc, doc
        status, doc = await self.post(1, "/change-membership", list(range(1, n + 1)))
        assert status == 200 and "Ok" in doc, doc
        return await self.wait_leader(list(range(1, n + 1)))
