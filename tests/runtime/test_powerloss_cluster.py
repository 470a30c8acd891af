"""Power cuts of a real cluster: three node processes over TCP, each keeping its data
directory (log store and KV state machine) on its own power-loss file system
(``fastraft.testing.powerloss_fs``). Under a pipelined stream of client writes (several in
flight at once, each acknowledgement seen as it comes), again and again the leader, a
follower, both (a majority) or all three lose power together at a random moment while they
run: each file system's unsynced writes are undone at that instant (dropped, or a random
prefix kept) and nothing the node does afterwards reaches the disk or returns (a write in
flight, an fsync half done); then its process is killed with SIGKILL, and it is mounted and
started again. Every run has each kind of cut at least once. At the end every write a
client saw acknowledged is readable on every node, and the nodes agree (Raft §5.3, §5.4;
thesis §3.8: durable before any message that depends on it; an acknowledged write is on
the disks of a majority, so it survives even the whole cluster's power going at once).

The load is pipelined because one write at a time hides a node that reports an append
durable before its store synced it: with a fast sync (RocksDB's one fdatasync) the sync
ends before the acknowledgement is back at the client, so a cut never falls between the
two; with writes overlapping, the acknowledged writes are always among the newest in the
stores' sync queues when the power goes.

FASTRAFT_POWERLOSS_CLUSTER_CUTS sets the cuts per run (default 8, a smoke run for CI: under
a minute a store kind); FASTRAFT_CRASH_SEED the seed.
"""

import os
import random

import pytest

from crash_cluster import (ClientWrites, crash_seed, crash_under_load, leader_of,
                           log_store_kinds, require_fuse, settle, start_cluster, stop_cluster)

CUTS = int(os.environ.get("FASTRAFT_POWERLOSS_CLUSTER_CUTS", "8"))
#: Client writes in flight at once during the cuts.
IN_FLIGHT = 64


#: Who loses power at a cut: the leader, a follower, both (a majority), or every node.
CUT_KINDS = ("leader", "follower", "majority", "all")


def cut_plan(rng, cuts):
    """Who loses power at each cut: each of ``CUT_KINDS`` at least once (when ``cuts`` >= 4),
    the rest mostly all, else a majority (the cuts that test what a majority holds: a
    store's sync may end within a millisecond of a write's acknowledgement, so an early
    report is caught at some cuts only), in a random order."""
    kinds = list(CUT_KINDS[:cuts])
    kinds += [rng.choice(("majority", "all", "all")) for _ in range(cuts - len(kinds))]
    rng.shuffle(kinds)
    return kinds


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("kind", log_store_kinds())
def test_power_cuts_of_random_nodes_lose_no_acknowledged_write(tmp_path, kind):
    require_fuse()
    rng = random.Random(crash_seed())
    nodes = start_cluster(tmp_path, power=True, extra=["--log-store", kind])
    writes = ClientWrites()
    undone = 0
    try:
        for who in cut_plan(rng, CUTS):
            leader = leader_of(nodes)
            follower = rng.choice([x for x in nodes.values() if x is not leader])
            victims = {"leader": [leader], "follower": [follower], "majority": [leader, follower],
                       "all": list(nodes.values())}[who]
            # a whole cluster's cut drops every unsynced write (nothing kept by chance can
            # hide one acknowledged too early); the others drop them or keep a torn prefix
            modes = [rng.choice(["drop", "torn"]) if who != "all" else "drop" for _ in victims]
            # The power goes at a random moment while writes flow: a thread pulls the plug.
            at = rng.uniform(0.05, 0.6)
            undone += crash_under_load(writes, leader, victims, modes, at=at,
                                       seconds=at + rng.uniform(0.05, 0.3), in_flight=IN_FLIGHT)
            for v in victims:
                v.start()
        settle(nodes)  # every node applies what the leader committed
        for x in nodes.values():
            lost = writes.lost_on(x)
            assert not lost, f"node {x.id} lost {len(lost)} acknowledged writes: {lost[:5]}"
        assert len(writes.acked) > CUTS and undone > 0, (len(writes.acked), undone)
    finally:
        stop_cluster(nodes)
