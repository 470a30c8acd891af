"""A secured cluster as real processes: the README's "Running a secured cluster" commands run
as written (by bash, on free ports of 127.0.0.1), and a secured three-node cluster keeps every
acknowledged write when its leader is killed with SIGKILL (Raft §5.4), with Raft over mutual
TLS (tcp) or over HTTPS (http)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from fastraft.errors import OutcomeUnknown
from fastraft.kv import Set
from fastraft.kv.certs import make_pki
from fastraft.kv.client import KVClient
from fastraft.kv.local_cluster import LocalCluster
from fastraft.testing import free_ports

README = Path(__file__).resolve().parents[2] / "README.md"
BOUND_S = 120


def readme_block() -> str:
    text = README.read_text()
    section = text[text.index("## Running a secured cluster"):]
    return re.search(r"```sh\n(.*?)```", section, flags=re.S).group(1)


def test_the_readme_secured_cluster_runs_as_written(tmp_path):
    script = readme_block()
    ports = free_ports(6)
    for i in (1, 2, 3):  # the README's ports, made free ones
        script = script.replace(f"127.0.0.1:2100{i}", f"127.0.0.1:{ports[i - 1]}")
        script = script.replace(f"127.0.0.1:2200{i}", f"127.0.0.1:{ports[i + 2]}")
    assert "2100" not in script and "2200" not in script
    bin_dir = os.path.dirname(sys.executable)  # where fastraft-kv is installed
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"}
    env.pop("FASTRAFT_KV_CLUSTER", None)
    proc = subprocess.Popen(["bash", "-c", script], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=BOUND_S)
    finally:
        try:  # whatever the script left behind (its nodes, if it failed before `kill`)
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    logs = "".join((tmp_path / "secured" / f"n{i}.log").read_text()[-2000:] for i in (1, 2, 3)
                   if (tmp_path / "secured" / f"n{i}.log").exists())
    assert proc.returncode == 0, (out, err, logs)
    lines = out.splitlines()
    assert "initialized" in lines
    assert any('"value": "hello"' in line for line in lines), out
    assert "hello" in lines  # the get
    voters = [line for line in lines if re.match(r"^[123] +voter +127\.0\.0\.1:", line)]
    assert len(voters) == 3 and sum("leader" in v for v in voters) == 1, out
    # the two refusals, one line each: the role, and the missing certificate
    assert "Forbidden: /change-membership needs a certificate with the admin role; client " \
           "'app' (client) has the client role" in err, err
    assert "certificate required" in err, err
    assert "voter" in out and "learner" not in out  # the refused change changed nothing


async def write_until_acknowledged(client: KVClient, key: str, value: str) -> str:
    """Set ``key`` and return the acknowledged value. A leader may step down without any fault
    injected (check-quorum on a loaded machine, thesis §6.2), and a write caught by it is
    OutcomeUnknown; a Set is idempotent, so the same write is sent again (bounded)."""
    for _ in range(5):
        try:
            return (await client.write(Set(key, value))).value
        except OutcomeUnknown:
            continue
    raise AssertionError(f"{key}: five writes in a row ended OutcomeUnknown")


@pytest.mark.parametrize("network", ["tcp", "http"])
def test_sigkill_the_leader_of_a_secured_cluster_loses_no_acknowledged_write(tmp_path, network):
    pki = str(tmp_path / "pki")
    make_pki(pki, "kill-test", [1, 2, 3])
    slow = ("--heartbeat-ms", "100", "--election-timeout-ms", "1000", "2000")

    async def main():
        with trio.fail_after(BOUND_S):
            async with LocalCluster(str(tmp_path), network=network, peer_tls=(pki, "kill-test"),
                                    serve_args=slow, verbose=1) as cluster:
                try:
                    for i in (1, 2, 3):
                        await cluster.start(i)
                    addrs = cluster.addrs()
                    acked = {}
                    async with KVClient(addrs, deadline_s=30, tls=cluster.client_tls()) as client:
                        await client.init([(i, addrs[i - 1], cluster.nodes[i].raft_addr)
                                           for i in (1, 2, 3)], addr=addrs[0])
                        for k in range(20):
                            acked[f"k{k}"] = await write_until_acknowledged(client, f"k{k}", str(k))
                        leader = (await client.metrics(addrs[0]))["current_leader"]
                        await cluster.kill(leader)  # SIGKILL
                        for k in range(20, 30):  # through the new leader
                            acked[f"k{k}"] = await write_until_acknowledged(client, f"k{k}", str(k))
                        await cluster.restart(leader)
                        for key, value in acked.items():
                            assert await client.consistent_read(key) == value
                        with trio.fail_after(30):  # the restarted node catches up
                            while await client.read("k29", addr=cluster.nodes[leader].addr) != "29":
                                await trio.sleep(0.05)
                        for key, value in acked.items():
                            assert await client.read(key, addr=cluster.nodes[leader].addr) == value
                except BaseException:
                    for i in sorted(cluster.nodes):
                        print(f"--- node {i} log ---\n{cluster.log_tail(i)}")
                    raise

    trio.run(main)
