"""The ``fastraft-kv`` command against three node processes: run as ``python -m fastraft.kv``
for a few commands, and in this process (``cli.main`` in a worker thread, output captured)
for the rest, which saves an interpreter start per command."""

import json
import subprocess
import sys

import trio

from fastraft.kv.cli import main as cli_main
from fastraft.kv.local_cluster import LocalCluster

TIMEOUT_S = 120


async def kv(cluster_addrs, *args, timeout_s=10):
    """Run one client command; (exit status, stdout, stderr)."""
    cmd = [sys.executable, "-m", "fastraft.kv", "--cluster", ",".join(cluster_addrs),
           "--timeout", str(timeout_s), *args]
    with trio.fail_after(timeout_s + 20):
        done = await trio.run_process(cmd, capture_stdout=True, capture_stderr=True, check=False,
                                      stdin=subprocess.DEVNULL)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def test_the_cli_builds_a_cluster_and_reads_and_writes(tmp_path, capsys):
    async def kv_here(cluster_addrs, *args, timeout_s=10):
        argv = ["--cluster", ",".join(cluster_addrs), "--timeout", str(timeout_s), *args]
        capsys.readouterr()
        with trio.fail_after(timeout_s + 20):
            try:
                status = await trio.to_thread.run_sync(cli_main, argv)
            except SystemExit as e:  # argparse's usage errors
                status = e.code
        out, err = capsys.readouterr()
        return status, out, err

    async def main():
        with trio.fail_after(TIMEOUT_S):
            async with LocalCluster(str(tmp_path), store="memory") as cluster:
                for i in (1, 2, 3):
                    await cluster.start(i)
                a1, a2, a3 = cluster.addrs()
                n3 = cluster.nodes[3]
                assert await kv([a1], "init") == (0, "initialized\n", "")
                status, out, _ = await kv_here([a1], "add-learner", "2", a2)
                assert status == 0 and "node 2 added as a learner" in out
                status, out, _ = await kv_here([a1], "add-learner", "3", a3, n3.raft_addr)
                assert status == 0
                status, out, _ = await kv_here([a1], "change-membership", "1", "2", "3")
                assert (status, out.split(" (")[0]) == (0, "voters are now [1, 2, 3]")

                status, out, _ = await kv([a2, a3], "put", "foo", "bar")
                assert status == 0 and json.loads(out)["value"] == "bar"
                assert await kv([a3], "get", "foo") == (0, "bar\n", "")
                status, out, _ = await kv_here([a1], "get", "foo", "--local")
                assert (status, out) == (0, "bar\n")
                status, out, err = await kv_here([a1], "get", "nothing")
                assert (status, out, err) == (1, "", "nothing: not found\n")
                status, out, _ = await kv_here([a1], "cas", "foo", "bar", "baz")
                assert json.loads(out)["swapped"] is True
                status, out, _ = await kv_here([a1], "cas", "foo", "bar", "qux")
                assert json.loads(out) | {"log_id": None} == {"log_id": None, "value": "baz",
                                                              "swapped": False}
                status, out, _ = await kv_here([a1], "cas", "new", "--absent", "v")
                assert json.loads(out)["swapped"] is True
                assert (await kv_here([a1], "delete", "new"))[0] == 0
                assert (await kv_here([a1], "get", "new"))[0] == 1

                status, out, _ = await kv_here([a2], "members")
                lines = out.splitlines()
                assert status == 0 and len(lines) == 5
                assert lines[2].split()[:2] == ["1", "voter"] and lines[2].endswith("leader")
                status, out, _ = await kv_here([a1, a2, a3], "metrics")
                states = [line.split()[2] for line in out.splitlines()[2:]]
                assert sorted(states) == ["Follower", "Follower", "Leader"]
                status, out, _ = await kv_here([a1, a2, a3], "metrics", "--json")
                assert [json.loads(line)["id"] for line in out.splitlines()] == [1, 2, 3]

                status, _, err = await kv_here([a1], "cas", "foo", "baz")
                assert status == 2 and "EXPECTED or --absent" in err
                status, _, err = await kv_here([a1], "put", "k")
                assert status == 2
                await cluster.kill(1)
                status, out, _ = await kv_here([a1, a2, a3], "metrics")
                assert "down" in out.splitlines()[2]
                status, _, err = await kv([a1], "get", "foo", "--local", timeout_s=0.5)
                assert status == 1 and "ClusterUnavailable" in err

    trio.run(main)
