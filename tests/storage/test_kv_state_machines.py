"""The KV state machines: commands, identical behaviour on memory and lmdb, snapshots that
are consistent while writes go on, and refusal of bad stored state."""

import io
import os

import hypothesis.strategies as st
import lmdb
import pytest
import trio
from hypothesis import given, settings

from fastraft import CodecError, Entry, EntryKind, LogId, StorageError
from fastraft.kv import (CompareAndSwap, Delete, LmdbKVStateMachine, MemoryKVStateMachine, Set,
                         decode_command, encode_command)
from fastraft.kv.commands import MAX_KEY_BYTES
from fastraft.kv.snapshot_format import read_snapshot
from fastraft.storage import LmdbEnv, LmdbLogStore
from fastraft.testing.helpers import member


def normal(index, command, term=1):
    payload = command if isinstance(command, bytes) else encode_command(command)
    return Entry(term, index, EntryKind.NORMAL, payload)


def test_command_round_trip_and_wire_shape():
    for cmd in (Set("k", "v"), Delete("k"), CompareAndSwap("k", None, "v"),
                CompareAndSwap("ключ", "старое", "новое")):
        assert decode_command(encode_command(cmd)) == cmd
    assert encode_command(Set("a", "b")) == b'{"Set":{"key":"a","value":"b"}}'
    assert decode_command(b'{"Delete": {"key": "x"}}') == Delete("x")


@pytest.mark.parametrize("payload", [
    b"", b"\xff\xfe", b"null", b"[]", b"{}", b'{"Set": 1}', b'{"Set": {"key": "a"}}',
    b'{"Set": {"key": "a", "value": 1}}', b'{"Set": {"key": "", "value": "v"}}',
    b'{"Set": {"key": "a", "value": "v", "extra": 1}}', b'{"Get": {"key": "a"}}',
    b'{"Set": {"key": "a", "value": "v"}, "Delete": {"key": "a"}}',
    b'{"CompareAndSwap": {"key": "a", "expected": 3, "value": "v"}}',
    b'{"Set": {"key": "\\ud800", "value": "v"}}', b"[" * 100000,
    b'{"Set": {"key": "' + b"k" * (MAX_KEY_BYTES + 1) + b'", "value": "v"}}',
])
def test_bad_payloads_raise_codec_error(payload):
    with pytest.raises(CodecError):
        decode_command(payload)


def test_encode_refuses_keys_no_backend_can_store():
    with pytest.raises(ValueError):
        encode_command(Set("", "v"))
    with pytest.raises(ValueError):
        encode_command(Set("k" * (MAX_KEY_BYTES + 1), "v"))


async def open_pair(tmp_path):
    return MemoryKVStateMachine(), await LmdbKVStateMachine.open(tmp_path / "kv")


def test_responses_and_error_values(tmp_path):
    async def main():
        for sm in await open_pair(tmp_path):
            got = await sm.apply([
                normal(1, Set("a", "1")), normal(2, b"not json"),
                normal(3, CompareAndSwap("a", "1", "2")), normal(4, CompareAndSwap("a", "1", "3")),
                normal(5, CompareAndSwap("b", None, "x")), normal(6, Delete("a")),
                normal(7, Delete("missing")), Entry(1, 8, EntryKind.BLANK, b""),
                Entry(1, 9, EntryKind.MEMBERSHIP, b"not a membership"),
            ])
            assert got[0] == {"value": "1"}
            assert set(got[1]) == {"error"}
            assert got[2:7] == [{"value": "2", "swapped": True},
                                {"value": "2", "swapped": False},
                                {"value": "x", "swapped": True}, {"value": None}, {"value": None}]
            assert got[7] is None and set(got[8]) == {"error"}
            assert (sm.get("a"), sm.get("b"), sm.get("missing")) == (None, "x", None)
            last, membership = await sm.applied_state()
            assert last == LogId(1, 9)
            assert membership.log_id is None  # the bad membership entry changed nothing
            await sm.aclose()

    trio.run(main)


def test_apply_refuses_to_skip_or_repeat(tmp_path):
    async def main():
        for sm in await open_pair(tmp_path):
            await sm.apply([normal(1, Set("a", "1"))])
            for bad in ([normal(1, Set("a", "2"))], [normal(3, Set("a", "2"))]):
                with pytest.raises(ValueError):
                    await sm.apply(bad)
            assert sm.get("a") == "1" and (await sm.applied_state())[0] == LogId(1, 1)
            await sm.aclose()

    trio.run(main)


commands = st.one_of(
    st.builds(Set, st.sampled_from("abcde"), st.text(max_size=5)),
    st.builds(Delete, st.sampled_from("abcde")),
    st.builds(CompareAndSwap, st.sampled_from("abcde"), st.none() | st.text(max_size=2),
              st.text(max_size=5)),
    st.just(b"garbage"),
)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(commands, min_size=1, max_size=8), min_size=1, max_size=6))
def test_memory_and_lmdb_agree_entry_for_entry(tmp_path_factory, batches):
    path = tmp_path_factory.mktemp("agree")

    async def main():
        mem, disk = await open_pair(path)
        index = 0
        for batch in batches:
            entries = [normal(index + i + 1, c) for i, c in enumerate(batch)]
            index += len(batch)
            assert await mem.apply(entries) == await disk.apply(entries)
        for key in "abcde":
            assert mem.get(key) == disk.get(key)
        # Their snapshots hold the same pairs, in the same order.
        a, b = await mem.build_snapshot(), await disk.build_snapshot()
        assert a.meta.last_log_id == b.meta.last_log_id == LogId(1, index)
        pairs_a, pairs_b = list(read_snapshot(a.data)[1]), list(read_snapshot(b.data)[1])
        a.close()
        b.close()
        assert pairs_a == pairs_b
        await mem.aclose()
        await disk.aclose()

    trio.run(main)


def test_snapshots_cross_backends(tmp_path):
    async def main():
        mem, disk = await open_pair(tmp_path)
        await mem.apply([member(1, 1, 1, 2)] + [normal(i, Set(f"k{i}", "v" * i)) for i in range(2, 300)])
        snap = await mem.build_snapshot()
        sink = await disk.begin_receiving_snapshot()
        sink.write(snap.data.read())
        await disk.install_snapshot(snap.meta, sink)
        assert disk.get("k299") == "v" * 299 and await disk.applied_state() == await mem.applied_state()
        # And back, through a plain BytesIO rather than the file the machine handed out.
        back = MemoryKVStateMachine()
        snap2 = await disk.get_current_snapshot()
        await back.install_snapshot(snap2.meta, io.BytesIO(snap2.data.read()))
        snap2.close()
        assert back.get("k2") == "vv" and await back.applied_state() == await mem.applied_state()
        disk_copy = await LmdbKVStateMachine.open(tmp_path / "kv2")
        await disk_copy.install_snapshot(snap.meta, io.BytesIO(snap.data.getvalue()))
        assert disk_copy.get("k150") == "v" * 150
        await disk_copy.aclose()
        await disk.aclose()

    trio.run(main)


def test_snapshot_is_consistent_while_applies_go_on(tmp_path):
    """A snapshot built during applies equals the state at its own last_log_id."""
    async def main():
        env = LmdbEnv(tmp_path / "node")
        sm = await LmdbKVStateMachine.open(env)
        history = []
        for i in range(1, 2001):
            history.append(normal(i, Set(f"key{i % 300}", f"value{i}")))
        await sm.apply(history[:1000])
        built = []

        async def build():
            built.append(await sm.build_snapshot())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(build)
            for lo in range(1000, 2000, 50):
                await sm.apply(history[lo:lo + 50])
        snap = built[0]
        upto = snap.meta.last_log_id.index
        assert 1000 <= upto <= 2000
        replay = MemoryKVStateMachine()
        await replay.apply(history[:upto])
        check = MemoryKVStateMachine()
        await check.install_snapshot(snap.meta, io.BytesIO(snap.data.read()))
        snap.close()
        for k in range(300):
            assert check.get(f"key{k}") == replay.get(f"key{k}")
        await sm.aclose()
        env.close()

    trio.run(main)


def test_corrupt_or_missing_state_is_refused(tmp_path):
    async def main():
        sm = await LmdbKVStateMachine.open(tmp_path / "a")
        await sm.apply([member(1, 1, 1, 2), normal(2, Set("a", "1"))])
        snap = await sm.build_snapshot()
        snap.close()
        await sm.aclose()

        env = lmdb.open(str(tmp_path / "a"), max_dbs=8)
        with env.begin(write=True) as txn:
            meta = env.open_db(b"kv_meta", txn=txn)
            good = txn.get(b"applied", db=meta)
            txn.put(b"applied", good[:-1] + bytes([good[-1] ^ 1]), db=meta)
        env.close()
        with pytest.raises(StorageError, match="applied") as err:
            await LmdbKVStateMachine.open(tmp_path / "a")
        assert str(tmp_path / "a") in str(err.value)

        env = lmdb.open(str(tmp_path / "a"), max_dbs=8)
        with env.begin(write=True) as txn:
            txn.put(b"applied", good, db=env.open_db(b"kv_meta", txn=txn))
        env.close()
        snap_dir = tmp_path / "a" / "kv-snapshots"
        (name,) = os.listdir(snap_dir)
        os.remove(snap_dir / name)
        with pytest.raises(StorageError, match="missing"):
            await LmdbKVStateMachine.open(tmp_path / "a")

    trio.run(main)


def test_leftover_files_are_removed_at_open(tmp_path):
    async def main():
        sm = await LmdbKVStateMachine.open(tmp_path)
        await sm.apply([normal(1, Set("a", "1"))])
        (await sm.build_snapshot()).close()
        sink = await sm.begin_receiving_snapshot()
        sink.write(b"half a snapshot")
        sink.close()
        await sm.aclose()
        sm = await LmdbKVStateMachine.open(tmp_path)
        assert len(os.listdir(tmp_path / "kv-snapshots")) == 1
        assert (await sm.get_current_snapshot()).meta.last_log_id == LogId(1, 1)
        await sm.aclose()

    trio.run(main)


def test_log_and_state_machine_share_one_environment(tmp_path):
    async def main():
        env = LmdbEnv(tmp_path, map_size_bytes=256 * 1024)
        log = await LmdbLogStore.open(env)
        sm = await LmdbKVStateMachine.open(env)
        big = "x" * 2000
        batch = [normal(i, Set(f"k{i}", big)) for i in range(1, 401)]
        async with trio.open_nursery() as nursery:  # both write, and the map grows under them
            nursery.start_soon(log.append, batch)
            nursery.start_soon(sm.apply, batch)
        assert len(await log.read_entries(1, 1000)) == 400 and sm.get("k400") == big
        await sm.aclose()
        await log.aclose()
        env.close()
        assert sorted(os.listdir(tmp_path)) == ["data.mdb", "kv-snapshots", "lock.mdb"]

    trio.run(main)
