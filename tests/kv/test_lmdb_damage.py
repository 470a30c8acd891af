"""The lmdb KV state machine refuses damaged values instead of serving them.

Regression for the attack "one value edited in a stopped node's state/data.mdb: the node
started and served the edited value, also through consistent_read once it led": values
carried no checksum. Each value is now sealed (``fastraft.kv.sealed_values``).
"""

import lmdb
import pytest
import trio

from fastraft import Entry, EntryKind, LogId, StorageError
from fastraft.kv import LmdbKVStateMachine, Set
from fastraft.kv.client import KVClient
from fastraft.kv.commands import CompareAndSwap, encode_command
from fastraft.kv.server import NodeOptions, run_node

from test_node import TIMEOUT_S, Nodes

SECRET = "secret-value-AAAAAAAA"
EDITED = "secret-value-BBBBBBBB"


def _set(index: int, key: str, value: str) -> Entry:
    return Entry(1, index, EntryKind.NORMAL, encode_command(Set(key, value)))


def _edit_file(path, old: str, new: str) -> None:
    """Change ``old`` to ``new`` (same length) in the file, in place, as a hand edit would."""
    assert len(old) == len(new)
    with open(path, "r+b") as f:
        data = f.read()
        at = data.find(old.encode())
        assert at >= 0, "the value is stored in the file as written"
        assert data.find(old.encode(), at + 1) < 0, "the value is stored once"
        f.seek(at)
        f.write(new.encode())


async def _store_with_secret(path) -> None:
    sm = await LmdbKVStateMachine.open(path)
    await sm.apply([_set(1, "plain", "x"), _set(2, "secret", SECRET), _set(3, "other", "y")])
    await sm.aclose()


def test_an_edited_value_is_refused_naming_its_key_and_the_machine_stops_serving(tmp_path):
    async def main():
        path = tmp_path / "sm"
        await _store_with_secret(path)
        _edit_file(path / "data.mdb", SECRET, EDITED)

        sm = await LmdbKVStateMachine.open(path)
        assert sm.get("plain") == "x", "undamaged values still read before the damage is met"
        with pytest.raises(StorageError, match="'secret'.*damaged"):
            sm.get("secret")
        # once damage is seen, nothing more is served or applied
        with pytest.raises(StorageError, match="damaged"):
            sm.get("plain")
        with pytest.raises(StorageError, match="damaged"):
            await sm.apply([_set(4, "more", "z")])
        await sm.aclose()

        sm = await LmdbKVStateMachine.open(path)  # a compare-and-swap reads it in apply
        cas = Entry(1, 4, EntryKind.NORMAL, encode_command(CompareAndSwap("secret", EDITED, "stolen")))
        with pytest.raises(StorageError, match="'secret'"):
            await sm.apply([cas])
        await sm.aclose()

        sm = await LmdbKVStateMachine.open(path)  # damage is never shipped in a snapshot
        with pytest.raises(StorageError, match="'secret'"):
            await sm.build_snapshot()
        await sm.aclose()

        sm = await LmdbKVStateMachine.open(path)
        assert (await sm.applied_state())[0] == LogId(1, 3), "nothing refused was applied"
        await sm.aclose()

    trio.run(main)


def test_a_value_moved_to_another_key_is_refused(tmp_path):
    """The key is part of the checksum: a record copied under another key does not pass."""
    async def main():
        path = tmp_path / "sm"
        await _store_with_secret(path)
        env = lmdb.open(str(path), max_dbs=8)
        db = env.open_db(b"kv_data")
        with env.begin(write=True) as txn:
            txn.put(b"plain", txn.get(b"secret", db=db), db=db)
        env.close()
        sm = await LmdbKVStateMachine.open(path)
        with pytest.raises(StorageError, match="'plain'"):
            sm.get("plain")
        await sm.aclose()

    trio.run(main)


def test_values_installed_from_a_snapshot_are_sealed(tmp_path):
    async def main():
        source = await LmdbKVStateMachine.open(tmp_path / "a")
        await source.apply([_set(1, "k", "v1"), _set(2, "j", "v2")])
        snap = await source.build_snapshot()
        target = await LmdbKVStateMachine.open(tmp_path / "b")
        sink = await target.begin_receiving_snapshot()
        sink.write(snap.data.read())
        snap.close()
        await target.install_snapshot(snap.meta, sink)
        assert (target.get("k"), target.get("j")) == ("v1", "v2")
        cas = Entry(1, 3, EntryKind.NORMAL, encode_command(CompareAndSwap("k", "v1", "v3")))
        assert await target.apply([cas]) == [{"value": "v3", "swapped": True}]
        await source.aclose()
        await target.aclose()

    trio.run(main)


def test_a_store_of_the_format_without_checksums_is_refused(tmp_path):
    async def main():
        path = tmp_path / "sm"
        await _store_with_secret(path)
        env = lmdb.open(str(path), max_dbs=8)
        with env.begin(write=True) as txn:
            txn.put(b"format", b"fastraft-kv-1", db=env.open_db(b"kv_meta", txn=txn))
        env.close()
        with pytest.raises(StorageError, match="no checksum.*fastraft-kv-1.*new id"):
            await LmdbKVStateMachine.open(path)

    trio.run(main)


def test_a_node_whose_state_file_was_edited_does_not_serve_the_edited_value(tmp_path):
    """The attack as it was run: write, stop the node, edit state/data.mdb, start it again;
    neither a local nor a linearizable read returns the edited value, and the node stops
    (a storage failure) instead of applying on top of damaged state."""
    async def main():
        with trio.fail_after(TIMEOUT_S):
            async with trio.open_nursery() as nursery:
                nodes = Nodes(nursery, store="lmdb", base_dir=str(tmp_path))
                info = await nodes.start(1)
                async with KVClient([info.addr]) as client:
                    await client.init()
                    await client.write(Set("secret", SECRET))
                    assert await client.consistent_read("secret") == SECRET
                nodes.stop(1)
            _edit_file(tmp_path / "n1" / "state" / "data.mdb", SECRET, EDITED)

            stopped = trio.Event()
            failure = []

            async def node(task_status):
                options = NodeOptions(node_id=1, addr=info.addr, raft_addr="127.0.0.1:0",
                                      store="lmdb", data_dir=str(tmp_path / "n1"))
                try:
                    await run_node(options, task_status=task_status)
                except StorageError as e:
                    failure.append(e)
                finally:
                    stopped.set()

            async with trio.open_nursery() as nursery:
                await nursery.start(node)
                async with KVClient([info.addr], deadline_s=5) as client:
                    for read in (client.consistent_read, client.read):
                        with pytest.raises(Exception) as caught:
                            got = await read("secret")
                            pytest.fail(f"{read.__name__} answered {got!r}")
                        assert "damaged" in str(caught.value), caught.value
                    with pytest.raises(Exception):  # never acknowledged as applied
                        await client.write(Set("after", "x"))
                await stopped.wait()  # the node stops on its own (bounded by fail_after)
            assert failure and "'secret'" in str(failure[0]), failure

    trio.run(main)
