"""``fastraft demo``, the README's main job, as a user runs it: a subprocess, checked by its
output, and it leaves no process and no file behind, also when interrupted (Ctrl-C)."""

import os
import re
import signal
import subprocess
import sys

import trio

TIMEOUT_S = 180


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as f:  # a zombie of another parent counts as gone
        return f.read().rsplit(")", 1)[1].split()[0] == "Z"


def test_the_demo_runs_a_cluster_through_a_leader_kill_and_cleans_up():
    done = subprocess.run([sys.executable, "-m", "fastraft", "demo"], capture_output=True,
                          timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)
    out = done.stdout.decode()
    assert done.returncode == 0, out + done.stderr.decode()
    for step in range(1, 10):
        assert f"[{step}/9]" in out
    assert "node 1 leads" in out
    assert re.search(r"\d+ writes acknowledged, \d+ with an unknown outcome .*, 0 lost", out)
    assert "new leader: node " in out
    table = out.split("[9/9] metrics of each node\n")[1].splitlines()
    assert table[0].split()[:3] == ["node", "addr", "state"]
    assert sorted(line.split()[2] for line in table[2:5]) == ["Follower", "Follower", "Leader"]
    base_dir = re.search(r"lmdb stores in (\S+)\)", out).group(1)
    assert not os.path.exists(base_dir)
    for pid in re.findall(r"node \d: pid (\d+)", out):
        assert _gone(int(pid))


def test_ctrl_c_stops_the_nodes_and_removes_the_files():
    async def main():
        with trio.fail_after(TIMEOUT_S):
            proc = await trio.lowlevel.open_process(
                [sys.executable, "-m", "fastraft", "demo"], stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            out = b""
            while b"[3/9]" not in out:  # bounded by fail_after
                chunk = await proc.stdout.receive_some(65536)
                assert chunk, out.decode()
                out += chunk
            proc.send_signal(signal.SIGINT)
            async with trio.open_nursery() as nursery:
                async def drain(stream, sink):
                    while chunk := await stream.receive_some(65536):
                        sink.append(chunk)
                rest, err = [], []
                nursery.start_soon(drain, proc.stdout, rest)
                nursery.start_soon(drain, proc.stderr, err)
                await proc.wait()
            text = (out + b"".join(rest)).decode()
            assert proc.returncode == 130, text + b"".join(err).decode()
            assert "interrupted" in b"".join(err).decode()
            assert "Traceback" not in b"".join(err).decode()  # one line, no exception group
            base_dir = re.search(r"lmdb stores in (\S+)\)", text).group(1)
            assert not os.path.exists(base_dir)
            for pid in re.findall(r"node \d: pid (\d+)", text):
                assert _gone(int(pid))

    trio.run(main)
