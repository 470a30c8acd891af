"""A claimed data directory that lost its stores is refused at start (``fastraft.kv.data_dir``).

Regression for the attack "both data.mdb files truncated to 0 in a data directory whose id
file says it belongs to node 2: the node started empty, voted, and 10 of 10 acknowledged
writes were lost when it and a stale node formed the majority".
"""

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
import trio

from fastraft import ConfigError
from fastraft.kv import Set
from fastraft.kv.client import KVClient
from fastraft.kv.data_dir import ID_FILE
from fastraft.kv.server import NodeOptions, run_node
from fastraft.testing import free_ports

from test_node import TIMEOUT_S, Nodes

CLI_TIMEOUT_S = 60


def _options(tmp_path, i, **kw) -> NodeOptions:
    return NodeOptions(node_id=i, addr="127.0.0.1:0", raft_addr="127.0.0.1:0", store="lmdb",
                       data_dir=str(tmp_path / f"n{i}"), **kw)


async def _one_node_with_data(tmp_path, log_store="lmdb") -> None:
    async with trio.open_nursery() as nursery:
        nodes = Nodes(nursery, store="lmdb", base_dir=str(tmp_path), log_store=log_store)
        info = await nodes.start(1)
        async with KVClient([info.addr]) as client:
            await client.init()
            await client.write(Set("k", "v"))
        nodes.stop_all()


def _truncate_both(node_dir) -> None:
    for store in ("log", "state"):
        os.truncate(node_dir / store / "data.mdb", 0)


def test_the_id_file_is_written_once_both_stores_exist(tmp_path):
    async def main():
        with trio.fail_after(TIMEOUT_S):
            await _one_node_with_data(tmp_path)

    trio.run(main)
    node_dir = tmp_path / "n1"
    assert json.loads((node_dir / ID_FILE).read_text()) == {"id": 1}
    for store in ("log", "state"):
        assert (node_dir / store / "data.mdb").stat().st_size > 0


@pytest.mark.parametrize("damage", ["both truncated to 0", "log removed", "state emptied"])
def test_a_claimed_directory_that_lost_a_store_is_refused_unless_forced(tmp_path, damage):
    node_dir = tmp_path / "n1"

    async def main():
        with trio.fail_after(TIMEOUT_S):
            await _one_node_with_data(tmp_path)
            if damage == "both truncated to 0":
                _truncate_both(node_dir)
            elif damage == "log removed":
                shutil.rmtree(node_dir / "log")
            else:
                os.truncate(node_dir / "state" / "data.mdb", 0)
            sizes = {p: p.stat().st_size for p in node_dir.rglob("*") if p.is_file()}
            with pytest.raises(ConfigError, match="belongs to node 1.*missing or empty") as e:
                await run_node(_options(tmp_path, 1))
            assert "new id" in str(e.value) and "--force-new-store" in str(e.value)
            assert {p: p.stat().st_size for p in node_dir.rglob("*") if p.is_file()} == sizes, \
                "a refused start changes nothing on disk"

            async with trio.open_nursery() as nursery:  # forced: it starts, empty
                info = await nursery.start(run_node, _options(tmp_path, 1, force_new_store=True))
                async with KVClient([info.addr]) as client:
                    m = await client.metrics()
                if damage == "both truncated to 0":
                    assert m["last_log_index"] in (None, 0), "it starts with nothing"
                else:  # the store that is left is used (init, its membership, one write;
                    # a leader's blank entry may follow)
                    assert m["last_log_index"] >= 3
                nursery.cancel_scope.cancel()

    trio.run(main)


def test_a_rocksdb_log_that_lost_its_current_file_is_refused_unless_forced(tmp_path):
    """The same check for the RocksDB log (``--log-store rocksdb``): its CURRENT file names
    the manifest, and without it the database's contents are gone."""
    pytest.importorskip("rocksdict")
    node_dir = tmp_path / "n1"

    async def main():
        with trio.fail_after(TIMEOUT_S):
            await _one_node_with_data(tmp_path, log_store="rocksdb")
            os.remove(node_dir / "log" / "CURRENT")
            with pytest.raises(ConfigError, match="belongs to node 1.*log store.*CURRENT"):
                await run_node(_options(tmp_path, 1, log_store="rocksdb"))
            async with trio.open_nursery() as nursery:  # forced: a new, empty log
                info = await nursery.start(
                    run_node, _options(tmp_path, 1, log_store="rocksdb", force_new_store=True))
                async with KVClient([info.addr]) as client:
                    m = await client.metrics()
                # as with a lost lmdb log: the state machine that is left starts the node at
                # its applied point (init, the membership, one write)
                assert m["last_log_index"] >= 3, m["last_log_index"]
                assert (node_dir / "log" / "CURRENT").exists()
                nursery.cancel_scope.cancel()

    trio.run(main)


class FixedNodes:
    """Nodes on fixed loopback ports, so that a restarted node is found where the cluster's
    membership says it is."""

    def __init__(self, tmp_path, ids):
        ports = free_ports(2 * len(ids))
        self.tmp_path = tmp_path
        self.addr = {i: f"127.0.0.1:{ports[2 * k]}" for k, i in enumerate(ids)}
        self.raft = {i: f"127.0.0.1:{ports[2 * k + 1]}" for k, i in enumerate(ids)}

    def options(self, i) -> NodeOptions:
        return NodeOptions(node_id=i, addr=self.addr[i], raft_addr=self.raft[i], store="lmdb",
                           data_dir=str(self.tmp_path / f"n{i}"))


def test_acknowledged_writes_survive_a_node_whose_files_were_truncated(tmp_path):
    """The attack as it was run: three nodes; node 3 stops (stale); ten writes are
    acknowledged by nodes 1 and 2; all stop; node 2's files are truncated to 0; nodes 2 and
    3 start. Node 2 now refuses to start, so no majority forms without node 1, and once
    node 1 is back every acknowledged write is there."""
    nodes = FixedNodes(tmp_path, (1, 2, 3))

    async def main():
        with trio.fail_after(TIMEOUT_S * 2):
            async with trio.open_nursery() as nursery:
                scopes = {}
                for i in (1, 2, 3):
                    scopes[i] = trio.CancelScope()
                    await nursery.start(_run_in, scopes[i], nodes.options(i))
                async with KVClient([nodes.addr[1]]) as client:
                    await client.init()
                    for i in (2, 3):
                        await client.add_learner(i, nodes.addr[i])
                    await client.change_membership([1, 2, 3])
                    scopes[3].cancel()
                    for n in range(10):
                        await client.write(Set(f"key-{n}", f"value-{n}"))
                nursery.cancel_scope.cancel()
            _truncate_both(tmp_path / "n2")
            with pytest.raises(ConfigError, match="new id"):
                await run_node(nodes.options(2))
            async with trio.open_nursery() as nursery:
                for i in (3, 1):
                    await nursery.start(_run_in, trio.CancelScope(), nodes.options(i))
                async with KVClient([nodes.addr[1], nodes.addr[3]]) as client:
                    for n in range(10):
                        assert await client.consistent_read(f"key-{n}") == f"value-{n}"
                nursery.cancel_scope.cancel()

    trio.run(main)


async def _run_in(scope, options, task_status=trio.TASK_STATUS_IGNORED):
    with scope:
        await run_node(options, task_status=task_status)


def test_the_cli_refuses_with_the_rejoin_advice_and_force_new_store_starts(tmp_path):
    async def main():
        with trio.fail_after(TIMEOUT_S):
            await _one_node_with_data(tmp_path)

    trio.run(main)
    _truncate_both(tmp_path / "n1")
    serve = [sys.executable, "-m", "fastraft.kv", "serve", "--id", "1", "--addr",
             "127.0.0.1:0", "--raft-addr", "127.0.0.1:0", "--store", "lmdb",
             "--data", str(tmp_path / "n1")]
    refused = subprocess.run(serve, capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
    assert refused.returncode == 1, refused.stderr
    assert "ConfigError" in refused.stderr and "new id" in refused.stderr
    assert "--force-new-store" in refused.stderr

    proc = subprocess.Popen(serve + ["--force-new-store"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # one JSON line once it serves
        assert json.loads(line)["id"] == 1, proc.stderr.read() if not line else line
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=CLI_TIMEOUT_S)


@pytest.mark.parametrize("store", ["log", "state"])
def test_the_cli_reports_a_truncated_store_instead_of_dying_of_sigbus(tmp_path, store):
    """The attack as it was run: data.mdb truncated to 16 KiB made ``serve`` die of SIGBUS
    (exit 135, nothing logged). Now it exits 1 and says what is wrong with which file."""
    async def main():
        with trio.fail_after(TIMEOUT_S):
            async with trio.open_nursery() as nursery:
                nodes = Nodes(nursery, store="lmdb", base_dir=str(tmp_path))
                info = await nodes.start(1)
                async with KVClient([info.addr]) as client:
                    await client.init()
                    for n in range(40):  # enough to grow each file past 16 KiB
                        await client.write(Set(f"key-{n}", "v" * 2000))
                nodes.stop_all()

    trio.run(main)
    data = tmp_path / "n1" / store / "data.mdb"
    assert data.stat().st_size > 16 * 1024
    os.truncate(data, 16 * 1024)
    got = subprocess.run([sys.executable, "-m", "fastraft.kv", "serve", "--id", "1", "--addr",
                          "127.0.0.1:0", "--raft-addr", "127.0.0.1:0", "--store", "lmdb",
                          "--data", str(tmp_path / "n1")],
                         capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
    assert got.returncode == 1, f"exit {got.returncode} (-7: SIGBUS)\n{got.stderr}"
    assert "StorageError" in got.stderr and str(data) in got.stderr, got.stderr
    assert "truncated" in got.stderr, got.stderr
