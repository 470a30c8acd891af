"""A small RaftHandler for network tests: it answers every request kind with a response
derived from the request, so a test can check that each response went to its own request."""

import trio

from fastraft.errors import RaftShutdown
from fastraft.messages import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    InstallSnapshotResponse,
    TimeoutNowResponse,
    VoteResponse,
)
from fastraft.net import Reply


class EchoHandler:
    """Answers as node ``node_id``. ``delay_s`` delays every answer; requests whose term is
    in ``hang_terms`` are never answered, those in ``silent_terms`` are answered with None (no
    answer); ``shutting_down`` makes every request fail with RaftShutdown. ``seen`` records requests in the order they were handed over."""

    def __init__(self, node_id=2, delay_s=0.0):
        self.node_id = node_id
        self.delay_s = delay_s
        self.hang_terms = set()
        self.silent_terms = set()
        self.shutting_down = False
        self.seen = []

    async def _answer(self, req, make):
        self.seen.append(req)
        if self.shutting_down:
            raise RaftShutdown("node is shutting down")
        if req.term in self.hang_terms:
            await trio.sleep_forever()
        if self.delay_s:
            await trio.sleep(self.delay_s)
        if req.term in self.silent_terms:
            return None
        return make()

    async def handle_append_entries(self, req):
        return await self._answer(req, lambda: AppendEntriesResponse(
            term=req.term, sender=self.node_id, success=True,
            match_index=req.prev_log_index + len(req.entries), seq=req.seq))

    async def handle_vote(self, req):
        return await self._answer(req, lambda: VoteResponse(
            term=req.term, sender=self.node_id, granted=req.term % 2 == 0, pre_vote=req.pre_vote))

    async def handle_install_snapshot(self, req):
        return await self._answer(req, lambda: InstallSnapshotResponse(
            term=req.term, sender=self.node_id, snapshot_id=req.snapshot_id,
            next_offset=req.offset + len(req.data), done=req.done))

    async def handle_timeout_now(self, req):
        return await self._answer(req, lambda: TimeoutNowResponse(term=req.term, sender=self.node_id))


class OrderedEchoHandler(EchoHandler):
    """An EchoHandler that also offers ``submit_request``: it records each request at once,
    in submission order, and answers it later (as a fastraft node does)."""

    def __init__(self, nursery, **kw):
        super().__init__(**kw)
        self.nursery = nursery
        self.submitted = []

    async def submit_request(self, req):
        self.submitted.append(req)
        reply = Reply()

        async def work():
            try:
                reply.set_result(await self.handle_append_entries(req))
            except Exception as e:
                reply.set_error(e)

        self.nursery.start_soon(work)
        return reply


def append_request(term=1, seq=0, prev=0, entries=()):
    return AppendEntriesRequest(term=term, sender=1, prev_log_term=0, prev_log_index=prev,
                                leader_commit=0, seq=seq, entries=list(entries))
