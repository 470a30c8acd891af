"""The commands' errors, run as subprocesses: every start-up and admin error is one line on
stderr with exit status 1 (2 for bad usage), --timeout bounds admin commands too, global
options go before or after the command, --version answers, and put/get on a cluster that was
never initialized say so at once."""

import json
import signal
import subprocess
import sys
from importlib.metadata import version

import pytest

from fastraft.testing import free_ports

#: Bound on any one command here (generous: the machine is shared); not a timing assertion.
BOUND_S = 60


def run(*args, timeout_s=BOUND_S):
    done = subprocess.run([sys.executable, "-m", "fastraft", *args], capture_output=True,
                          text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
    return done.returncode, done.stdout, done.stderr


def kv(*args):
    return run("kv", *args)


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def node(tmp_path):
    """A ``fastraft-kv serve`` process (memory store); yields its JSON line."""
    http, raft = free_ports(2)
    proc = subprocess.Popen([sys.executable, "-m", "fastraft.kv", "serve", "--id", "1",
                             "--addr", f"127.0.0.1:{http}", "--raft-addr", f"127.0.0.1:{raft}",
                             "--store", "lmdb", "--data", str(tmp_path / "n1")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)
    try:
        info = json.loads(proc.stdout.readline())
        yield {**info, "data": str(tmp_path / "n1")}
    finally:
        proc.kill()
        proc.wait(BOUND_S)


def test_version_on_both_commands():
    want = version("fastraft")
    for cmd in (("--version",), ("kv", "--version")):
        status, out, _ = run(*cmd)
        assert status == 0 and want in out and "core" in out


@pytest.mark.parametrize("args, says", [
    (("kv", "put", "k"), "the following arguments are required: value"),
    (("kv", "--timeout", "-1", "members"), "--timeout"),
    (("kv", "members", "--cluster", "https://127.0.0.1:1"), "https:// in --cluster needs --cacert"),
    (("kv", "members", "--cert", "c.pem", "--key", "k.pem"), "--cert and --key need --cacert"),
    (("kv", "members", "--cluster", "ftp://127.0.0.1:1"), "use host:port, http:// or https://"),
    (("kv", "serve", "--id", "1", "--addr", "127.0.0.1:0", "--cacert", "ca.pem"), "--peer-cacert"),
    (("kv", "serve", "--id", "1", "--addr", "127.0.0.1:0", "--http-max-connections", "0"),
     "--http-max-connections"),
    (("kv", "members", "--cluster", "127.0.0.1"), "--cluster"),
    (("kv", "init", "1:127.0.0.1:1"), "expected ID=ADDR"),
    (("nonsense",), "invalid choice"),
])
def test_bad_usage_is_one_line_and_exit_2(args, says):
    status, _, err = run(*args)
    assert status == 2 and says in one_line(err)


@pytest.mark.parametrize("command", [("init",), ("add-learner", "2", "127.0.0.1:9"),
                                     ("change-membership", "1", "2"), ("remove-learner", "2"),
                                     ("members",), ("put", "k", "v")])
def test_admin_commands_end_within_timeout_with_one_line(command):
    (closed,) = free_ports(1)  # nobody listens there
    # the global options after the command, as an operator may type them
    status, _, err = kv(*command, "--cluster", f"http://127.0.0.1:{closed}", "--timeout", "1")
    line = one_line(err)
    assert status == 1 and line.startswith("fastraft-kv: ")
    assert "within" in line


def test_put_and_get_on_an_uninitialized_cluster_say_so(node):
    for cmd in (("put", "k", "v"), ("get", "k")):
        status, _, err = kv("--cluster", f"http://{node['addr']}/", "--timeout", "30", *cmd)
        line = one_line(err)
        assert status == 1 and "not initialized" in line and "fastraft-kv init" in line


def test_start_up_errors_are_one_line(node):
    (free,) = free_ports(1)
    in_use = kv("serve", "--id", "2", "--addr", node["addr"], "--raft-addr", f"127.0.0.1:{free}")
    assert in_use[0] == 1 and "in use" in one_line(in_use[2])
    other = kv("serve", "--id", "2", "--addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0",
               "--store", "lmdb", "--data", node["data"])
    assert other[0] == 1 and "holds the data of node 1, not node 2" in one_line(other[2])
    no_dir = kv("serve", "--id", "2", "--addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0",
                "--store", "lmdb")
    assert no_dir[0] == 1 and "--data" in one_line(no_dir[2])


def test_remove_learner_and_its_refusal_for_voters(node, tmp_path):
    http, raft = free_ports(2)
    learner = subprocess.Popen([sys.executable, "-m", "fastraft.kv", "serve", "--id", "2",
                                "--addr", f"127.0.0.1:{http}", "--raft-addr", f"127.0.0.1:{raft}"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               stdin=subprocess.DEVNULL, text=True)
    try:
        learner.stdout.readline()
        cluster = ("--cluster", node["addr"], "--timeout", "30")
        assert kv(*cluster, "init")[0] == 0
        assert kv(*cluster, "add-learner", "2", f"127.0.0.1:{http}")[0] == 0
        status, out, _ = kv(*cluster, "members")
        assert status == 0 and "learner" in out
        status, _, err = kv(*cluster, "remove-learner", "1")
        assert status == 1 and "voters: remove them with change_membership" in one_line(err)
        status, out, err = kv(*cluster, "remove-learner", "2")
        assert status == 0 and "learners [2] removed" in out, err
        status, out, _ = kv(*cluster, "members")
        assert status == 0 and "learner" not in out
    finally:
        learner.kill()
        learner.wait(BOUND_S)


def test_missing_kv_extra_is_one_line():
    code = ("import sys; sys.modules['httptools'] = None\n"
            "from fastraft.kv.cli import main\n"
            "sys.exit(main(['serve', '--id', '1', '--addr', '127.0.0.1:0',"
            " '--raft-addr', '127.0.0.1:0']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=BOUND_S, stdin=subprocess.DEVNULL)
    line = one_line(done.stderr)
    assert done.returncode == 1 and "httptools is missing" in line and "fastraft[kv]" in line


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 0)])
def test_serve_stops_cleanly_on_a_signal_with_the_shells_status(tmp_path, signum, status):
    """Ctrl-C is an interruption (128 + SIGINT, as shells report it); SIGTERM is a service
    manager's ordinary stop. Either way the node stops cleanly, with no traceback."""
    http, raft = free_ports(2)
    proc = subprocess.Popen([sys.executable, "-m", "fastraft.kv", "serve", "--id", "1",
                             "--addr", f"127.0.0.1:{http}", "--raft-addr", f"127.0.0.1:{raft}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)
    try:
        json.loads(proc.stdout.readline())  # serving
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=BOUND_S)
        assert proc.returncode == status and "Traceback" not in err, (proc.returncode, err)
    finally:
        proc.kill()
        proc.wait(BOUND_S)
