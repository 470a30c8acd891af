"""An unexpected error in a TCP client connection's tasks (a bug: not a stream error, not a
bad frame, which the connection handles) surfaces from the client, also when it is raised
while the client closes: the connection's teardown must not replace it with the cancellation
that closing delivers. Real sockets on 127.0.0.1; the error is injected by a subclass of the
reader or writer the client uses (``monkeypatch``)."""

import trio

from fastraft.messages import VoteRequest
from fastraft.net import TcpNetwork, tcp_client, tcp_server
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



class ServedWithABugOnCancel(tcp_server._Served):
    """A served connection that meets a bug while the server is being cancelled."""

    started: "trio.Event | None" = None

    async def run(self):
        ServedWithABugOnCancel.started.set()
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            raise InjectedBug("met while the server is cancelled") from None


def test_a_bug_in_a_served_connection_while_the_server_stops_surfaces(monkeypatch):
    """The server side of the same rule: ``serve_connection``'s close of the stream, in its
    ``finally``, must not replace the connection's error with the server's cancellation."""
    monkeypatch.setattr(tcp_server, "_Served", ServedWithABugOnCancel)

    async def main():
        ServedWithABugOnCancel.started = trio.Event()
        raised = None
        stream = None
        try:
            async with trio.open_nursery() as nursery:
                node = await start_server(nursery, EchoHandler(node_id=2))
                host, port = node.addr.rsplit(":", 1)
                stream = await trio.open_tcp_stream(host, int(port))
                with trio.fail_after(5):
                    await ServedWithABugOnCancel.started.wait()
                nursery.cancel_scope.cancel()
        except BaseException as e:  # noqa: BLE001 - inspected below
            raised = e
        finally:
            if stream is not None:
                await stream.aclose()
        assert raised is not None, "the error raised in the served connection vanished"
        assert any(isinstance(leaf, InjectedBug) for leaf in leaves(raised)), raised

    trio.run(main)


async def handshake_with_a_bug_on_cancel(stream, tls, target_id):
    try:
        await trio.sleep_forever()
    except trio.Cancelled:
        raise InjectedBug("met in the handshake while cancelled") from None


def test_a_bug_in_the_client_handshake_while_cancelled_surfaces(monkeypatch):
    """``TcpClient._secure`` closes the stream when the handshake fails; that close must not
    replace the handshake's error with the cancellation that ended the wait."""
    monkeypatch.setattr(tcp_client, "open_client_tls", handshake_with_a_bug_on_cancel)

    async def main():
        raised = None
        async with trio.open_nursery() as nursery:
            node = await start_server(nursery, EchoHandler(node_id=2))
            network = TcpNetwork()
            network.tls = object()  # any: the handshake function above never reads it
            try:
                async with network.client(2, node) as c:
                    with trio.move_on_after(0.2):  # cancels the call while it handshakes
                        await c.vote(vote(2), 5.0)
            except BaseException as e:  # noqa: BLE001 - inspected below
                raised = e
            nursery.cancel_scope.cancel()
        assert raised is not None, "the error raised in the handshake vanished"
        assert any(isinstance(leaf, InjectedBug) for leaf in leaves(raised)), raised

    trio.run(main)
