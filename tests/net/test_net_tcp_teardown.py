"""An unexpected error in a TCP client connection's tasks (a bug: not a stream error, not a
bad frame, which the connection handles) surfaces from the client, also when it is raised
while the client closes: the connection's teardown must not replace it with the cancellation
that closing delivers. Real sockets on 127.0.0.1; the error is injected by a subclass of the
reader or writer the client uses (``monkeypatch``)."""

import trio

from fastraft.messages import VoteRequest
from fastraft.net import TcpNetwork, tcp_client
from fastraft.net.framing import FrameReader
from fastraft.net.writer import FrameWriter
from net_fixtures import EchoHandler
from test_net_tcp import start_server


class InjectedBug(LookupError):
    """Stands for a bug: an exception no part of the connection expects."""


class ReaderWithABugOnCancel(FrameReader):
    async def read(self):
        try:
            return await super().read()
        except trio.Cancelled:
            raise InjectedBug("met while the connection is cancelled") from None


class WriterWithABug(FrameWriter):
    async def run(self, on_end):
        await trio.lowlevel.checkpoint()
        on_end.cancel()
        raise InjectedBug("in the write loop")


def leaves(error: BaseException) -> list[BaseException]:
    """The exceptions inside ``error``'s (nested) exception groups."""
    subs = getattr(error, "exceptions", None)  # an exception group (also the 3.10 backport)
    if subs is not None:
        return [leaf for sub in subs for leaf in leaves(sub)]
    return [error]


def vote(term):
    return VoteRequest(term=term, sender=1, last_log_term=0, last_log_index=0)


def test_a_bug_in_the_reader_while_the_client_closes_surfaces(monkeypatch):
    monkeypatch.setattr(tcp_client, "FrameReader", ReaderWithABugOnCancel)

    async def main():
        raised = None
        async with trio.open_nursery() as nursery:
            node = await start_server(nursery, EchoHandler(node_id=2))
            try:
                async with TcpNetwork().client(2, node) as c:
                    assert (await c.vote(vote(2), 5.0)).granted  # connected, the reader waits
            except BaseException as e:  # noqa: BLE001 - inspected below
                raised = e
            nursery.cancel_scope.cancel()
        assert raised is not None, "the error raised in the reader vanished"
        assert any(isinstance(leaf, InjectedBug) for leaf in leaves(raised)), raised

    trio.run(main)


def test_a_bug_in_the_writer_surfaces(monkeypatch):
    monkeypatch.setattr(tcp_client, "FrameWriter", WriterWithABug)

    async def main():
        raised = None
        async with trio.open_nursery() as nursery:
            node = await start_server(nursery, EchoHandler(node_id=2))
            try:
                async with TcpNetwork().client(2, node) as c:
                    with trio.fail_after(5):
                        await c.vote(vote(2), 5.0)
            except BaseException as e:  # noqa: BLE001 - inspected below
                raised = e
            nursery.cancel_scope.cancel()
        assert raised is not None and any(isinstance(leaf, InjectedBug)
                                          for leaf in leaves(raised)), raised

    trio.run(main)
