"""A truncated lmdb data file is a clear StorageError at open, never a crash.

Regression for the attack "data.mdb truncated to 16 KiB: the process died of SIGBUS, exit
135, nothing logged". Each store (the log store, the KV state machine) is filled, closed,
its data.mdb truncated, then opened in a child process, so that a SIGBUS shows as the
child's death by signal, not as the test runner's.
"""

import os
import subprocess
import sys

import pytest
import trio

from fastraft import Entry, EntryKind, Vote
from fastraft.kv import LmdbKVStateMachine
from fastraft.kv.commands import Set, encode_command
from fastraft.storage import LmdbLogStore

OPEN_TIMEOUT_S = 60.0

CHILD = """
import sys, trio
from fastraft.errors import StorageError
from fastraft.kv import LmdbKVStateMachine
from fastraft.storage import LmdbLogStore

async def main(kind, path):
    opener = LmdbLogStore if kind == "log" else LmdbKVStateMachine
    store = await opener.open(path)
    if kind == "log":
        await store.read_entries(1, 1 << 20)
    else:
        await store.applied_state()
        store.get("key-1")
    await store.aclose()

try:
    trio.run(main, sys.argv[1], sys.argv[2])
except StorageError as e:
    print("StorageError:", e, file=sys.stderr)
    sys.exit(3)
print("opened")
"""


def _entries(first: int, n: int) -> list:
    return [Entry(1, i, EntryKind.NORMAL, encode_command(Set(f"key-{i}", "v" * 200)))
            for i in range(first, first + n)]


async def _fill(kind: str, path: str) -> None:
    if kind == "log":
        store = await LmdbLogStore.open(path)
        await store.save_vote(Vote(1, 1))
        for first in range(1, 1001, 100):
            await store.append(_entries(first, 100))
    else:
        store = await LmdbKVStateMachine.open(path)
        for first in range(1, 1001, 100):
            await store.apply(_entries(first, 100))
    await store.aclose()


def _open_in_child(kind: str, path: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CHILD, kind, path], capture_output=True,
                          text=True, timeout=OPEN_TIMEOUT_S)


@pytest.mark.parametrize("kind", ["log", "state"])
def test_whole_store_opens(tmp_path, kind):
    """The child opens an intact store (so the refusals below are the check's doing)."""
    path = str(tmp_path / kind)
    trio.run(_fill, kind, path)
    got = _open_in_child(kind, path)
    assert got.returncode == 0, got.stderr
    assert "opened" in got.stdout


@pytest.mark.parametrize("kind", ["log", "state"])
@pytest.mark.parametrize("size", ["0", "100", "16KiB", "half", "one page short"])
def test_truncated_store_is_refused_not_sigbus(tmp_path, kind, size):
    path = str(tmp_path / kind)
    trio.run(_fill, kind, path)
    data = os.path.join(path, "data.mdb")
    whole = os.path.getsize(data)
    assert whole > 64 * 1024, "the store must be large enough to truncate mid-file"
    cut = {"0": 0, "100": 100, "16KiB": 16 * 1024, "half": whole // 2,
           "one page short": whole - 4096}[size]
    os.truncate(data, cut)
    got = _open_in_child(kind, path)
    assert got.returncode == 3, (f"child exited {got.returncode} (a negative code is death "
                                 f"by signal: -7 is SIGBUS)\n{got.stdout}\n{got.stderr}")
    assert "StorageError" in got.stderr and "data.mdb" in got.stderr, got.stderr
    assert ("truncated" in got.stderr) or ("empty" in got.stderr), got.stderr
    assert os.path.getsize(data) == cut, "a refused open must not change the file"
