"""Three node processes (``proc_node.py``) that the crash tests kill: each keeps its data
directory on its own power-loss mount (``fastraft.testing.powerloss_mount``) when the test
cuts power, or on the plain disk when it only sends SIGKILL. Helpers to find the leader,
write through it (one write at a time, or several in flight), crash nodes together, wait
until every node applied what the leader committed, and find the acknowledged writes a node
lost. Shared by ``test_powerloss_cluster.py`` and ``test_sm_recovery_cluster.py``.

Writes are ``k<n> = str(n)`` with ``n`` counting up across a test (``ClientWrites``), so a
key names its value and no two writes share a key.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time

import pytest

from fastraft.testing import free_ports
from fastraft.testing.powerloss_mount import PowerLossMount, fuse_unavailable
from test_runtime_processes import Proc

NODES = (1, 2, 3)


def crash_seed() -> int:
    """FASTRAFT_CRASH_SEED, or the default seed of the crash tests."""
    return int(os.environ.get("FASTRAFT_CRASH_SEED", "20261207"))


def require_fuse() -> None:
    """Skip without /dev/fuse; fail where FUSE is present but cannot be used (a missing
    fusermount3 or pyfuse3 must not pass silently as a skip)."""
    why = fuse_unavailable()
    if why is not None:
        if not os.path.exists("/dev/fuse"):
            pytest.skip(why)
        pytest.fail(f"FUSE is present but unusable: {why}")


def log_store_kinds() -> list[str]:
    """The durable log stores installed here: lmdb, and rocksdb with the ``rocksdb`` extra."""
    try:
        import rocksdict  # noqa: F401
    except ImportError:
        return ["lmdb"]
    return ["lmdb", "rocksdb"]


class CrashNode:
    """One node process; its data directory on a power-loss mount when ``power``."""

    def __init__(self, tmp_path, node_id: int, nodes_arg: str, *, power: bool, seed: int,
                 extra=()) -> None:
        self.id = node_id
        self.nodes_arg = nodes_arg
        self.extra = list(extra)
        self.log = str(tmp_path / f"node{node_id}.log")
        self.mount = None
        if power:
            self.mount = PowerLossMount(tmp_path / f"backing{node_id}",
                                        tmp_path / f"mnt{node_id}", seed=seed * 10 + node_id)
            self.mount.start()
            self.dir = str(self.mount.path)
        else:
            self.dir = str(tmp_path / f"node{node_id}")
        self.proc = None

    def start(self, init: bool = False) -> None:
        self.proc = Proc(self.id, self.dir, self.nodes_arg, init, self.log, extra=self.extra)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.p.poll() is None

    def request(self, obj, timeout: float = 10):
        """The node's answer, or None when it is gone or does not answer in time."""
        try:
            return self.proc.request(obj, timeout)
        except (RuntimeError, OSError, ValueError, queue.Empty):
            return None

    def stop(self) -> None:
        """A clean exit (SIGKILL if that fails) and a clean unmount."""
        if self.alive():
            try:
                self.proc.exit()
            except Exception:
                self.proc.kill()
        if self.mount is not None:
            try:
                self.mount.stop()
            except Exception:
                self.mount._abort()


def start_cluster(tmp_path, *, power: bool, extra=()) -> dict[int, CrashNode]:
    """Three nodes on free ports of 127.0.0.1, node 1 initialising the cluster."""
    ports = free_ports(3)
    nodes_arg = ",".join(f"{i}=127.0.0.1:{ports[i - 1]}" for i in NODES)
    nodes = {}
    try:
        for i in NODES:
            nodes[i] = CrashNode(tmp_path, i, nodes_arg, power=power, seed=crash_seed(),
                                 extra=extra)
        for i in NODES:
            nodes[i].start(init=i == 1)
    except BaseException:
        stop_cluster(nodes)
        raise
    return nodes


def stop_cluster(nodes) -> None:
    for x in nodes.values():
        x.stop()


def crash(victims, modes) -> int:
    """Crash ``victims`` together, at this instant, while their processes run. On a
    power-loss mount the power goes (``modes``: "drop" or "torn" for each victim; all lose
    power before any is killed, as machines on one feed), then the process is killed and
    the mount made again; otherwise SIGKILL alone (the page cache survives it). The
    processes are not started again. Returns how many writes the cuts undid."""
    powered = [(v, m) for v, m in zip(victims, modes) if v.mount is not None]
    undone = sum(v.mount.power_off(m) for v, m in powered)
    for v in victims:
        if v.mount is None:
            if v.alive():
                v.proc.kill()
        else:
            v.mount.take_down([v.proc.p])
            v.proc.log.close()
    for v, _ in powered:
        v.mount.start()
    return undone


def crash_under_load(writes: "ClientWrites", leader: CrashNode, victims, modes, *, at: float,
                     seconds: float, in_flight: int) -> int:
    """``crash(victims, modes)`` from a timer thread ``at`` seconds into ``seconds`` of
    pipelined writes through ``leader`` (``in_flight`` at once); re-raises what the crash
    raised. Returns how many writes the cuts undid."""
    outcome: list = []

    def pull() -> None:
        try:
            outcome.append(crash(victims, modes))
        except BaseException as e:  # re-raised below, in the test's thread
            outcome.append(e)

    timer = threading.Timer(at, pull)
    timer.start()
    try:  # the writes go on a little past the crash (unless the leader's own ended)
        writes.pipelined(leader, in_flight=in_flight, seconds=seconds)
    finally:
        timer.join()  # the crash has happened by then, also when the writes ended first
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def leader_of(nodes, timeout_s: float = 30.0) -> CrashNode:
    """The node every live node agrees leads, once they do."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        st = [n.request({"cmd": "status"}) for n in nodes.values()]
        if None not in st:
            leaders = {s["leader"] for s in st}
            if len(leaders) == 1 and None not in leaders:
                lid = leaders.pop()
                if any(s["id"] == lid and s["state"] == "leader" for s in st):
                    return nodes[lid]
        time.sleep(0.05)
    raise AssertionError(f"no leader within {timeout_s} s{why_stopped(nodes)}")


def why_stopped(nodes) -> str:
    """The last line of each node's log that says why its Raft stopped (a storage error at
    start-up, say), for a failure message; "" when none did."""
    said = []
    for n in nodes.values():
        try:
            with open(n.log) as f:
                lines = [line.strip() for line in f if "stopped: " in line]
        except OSError:
            continue
        if lines:
            said.append(f"node {n.id}: {lines[-1][:300]}")
    return (" (" + "; ".join(said) + ")") if said else ""


def settle(nodes, timeout_s: float = 60.0) -> int:
    """Wait until every node applied all that is committed; returns that index.

    The target is the index of a marker write the leader acknowledges, not the leader's
    commit index as it reports it: a leader just elected may report a commit index below
    entries its predecessor committed, until an entry of its own term commits (paper §5.4.2,
    thesis §6.4), and settling on that lower index let a check run on a node that had not
    applied an acknowledged write yet."""
    deadline = time.monotonic() + timeout_s
    target = None
    for _ in range(1000):  # bounded by the count and the deadline
        reply = leader_of(nodes).request({"cmd": "write", "key": "settle-marker", "value": "x"})
        if reply is not None and "ok" in reply:
            target = reply["log_id"][1]
            break
        if time.monotonic() >= deadline:
            raise AssertionError(f"no marker write acknowledged within {timeout_s} s: {reply}"
                                 f"{why_stopped(nodes)}")
        time.sleep(0.1)
    assert target is not None, "no marker write acknowledged in 1,000 tries"
    st = None
    while time.monotonic() < deadline:
        st = [x.request({"cmd": "status"}) for x in nodes.values()]
        if all(s is not None and s["applied"] >= target for s in st):
            return target
        time.sleep(0.05)
    raise AssertionError(f"the nodes did not apply {target} within {timeout_s} s: {st}"
                         f"{why_stopped(nodes)}")


class ClientWrites:
    """The writes of one test: ``acked`` holds every write a client saw acknowledged."""

    def __init__(self) -> None:
        self.acked: dict[str, str] = {}
        self.last = 0  # the n of the latest write issued

    def one_at_a_time(self, leader: CrashNode, until=None, writes: int = 300) -> int:
        """Sequential writes through ``leader``: until the thread ``until`` ended, or else
        ``writes`` of them (stopping at the first that fails); at most 2,000. Returns the
        log index of the last acknowledged write (0 if none)."""
        last = 0
        for i in range(2000):
            self.last += 1
            n = self.last
            reply = leader.request({"cmd": "write", "key": f"k{n}", "value": str(n)})
            if reply is not None and "ok" in reply:
                self.acked[f"k{n}"] = str(n)
                last = reply["log_id"][1]
            if until is not None:
                if not until.is_alive():
                    return last
            elif reply is None or "ok" not in reply or i + 1 >= writes:
                return last
        return last

    def pipelined(self, leader: CrashNode, *, in_flight: int, seconds: float,
                  most: int = 20000) -> int:
        """``in_flight`` writes at once through ``leader`` (its process runs the writers),
        each acknowledgement recorded as it arrives, for at most ``seconds`` and ``most``
        writes, stopping at the first that fails or when the leader's process ends (its
        power was cut). Returns how many were acknowledged."""
        first = self.last + 1
        self.last += most
        try:
            leader.proc.p.stdin.write(json.dumps({"cmd": "writes", "first": first, "count": most,
                                                  "in_flight": in_flight,
                                                  "seconds": seconds}) + "\n")
            leader.proc.p.stdin.flush()
        except OSError:  # gone already
            return 0
        got = 0
        deadline = time.monotonic() + seconds + 30  # each write gives up after 5 s
        while True:  # bounded: by ``most`` acknowledgements and by the deadline
            try:
                msg = leader.proc.recv(max(0.0, deadline - time.monotonic()))
            except RuntimeError:  # the process ended
                return got
            except queue.Empty:
                raise AssertionError(f"node {leader.id}: writes did not end in {seconds} s")
            if msg.get("done"):
                return got
            self.acked[msg["acked"]] = msg["acked"][1:]
            got += 1

    def lost_on(self, node: CrashNode) -> list[str]:
        """The acknowledged writes ``node``'s state machine does not hold."""
        return [k for k, v in self.acked.items()
                if node.request({"cmd": "get", "key": k}) != {"value": v}]
