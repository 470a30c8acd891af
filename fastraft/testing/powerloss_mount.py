"""Mounting the power-loss file system (``powerloss_fs``) from a test, and cutting its power.

    mount = PowerLossMount(backing_dir, mount_dir, seed=7)
    mount.start()                 # mounted: keep a store's directory under mount.path
    proc = subprocess.Popen(...)  # a store's process, writing under mount.path
    undone = mount.power_cut("torn", [proc])  # the power goes while it runs (see below)
    mount.start()                 # mounted again: only what was synced before the cut is there
    mount.stop()                  # a clean unmount (keeps everything)

``power_cut`` is the real thing: the cut instant falls while the process runs (writes in
flight, an fsync started and not returned), the file system answers nothing after it, then
the process is killed with SIGKILL and the mount taken down. ``cut`` is the same for a mount
whose processes have already ended.

Needs /dev/fuse, the fuse3 package (fusermount3) and the ``powerloss`` extra (pyfuse3).
``fuse_unavailable()`` says why a mount cannot work here, or returns None.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import sys

__all__ = ["PowerLossMount", "fuse_unavailable"]

_START_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 60.0
#: How long a process killed on a cut mount may take to exit once its requests fail.
_EXIT_TIMEOUT_S = 60.0


def fuse_unavailable() -> str | None:
    """Why FUSE cannot be used on this machine, or None when it can."""
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse on this machine"
    if shutil.which("fusermount3") is None:
        return "fusermount3 is missing (Debian package fuse3)"
    try:
        import pyfuse3  # noqa: F401
    except ImportError as e:
        return f"pyfuse3 is not installed (pip install 'fastraft[powerloss]'): {e}"
    return None


class PowerLossMount:
    """One power-loss mount of ``backing`` at ``path``, served by a child process."""

    def __init__(self, backing: str | os.PathLike, path: str | os.PathLike, seed: int = 0) -> None:
        self.backing = os.fspath(backing)
        self.path = os.fspath(path)
        self.seed = seed
        self.mounts = 0
        self._proc: subprocess.Popen | None = None
        os.makedirs(self.backing, exist_ok=True)
        os.makedirs(self.path, exist_ok=True)

    def start(self) -> None:
        """Mount; returns once the mount serves requests."""
        if self._proc is not None:
            raise RuntimeError("already mounted")
        self.mounts += 1
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "fastraft.testing.powerloss_fs", self.backing, self.path,
             str(self.seed * 1000 + self.mounts)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self._read_line(_START_TIMEOUT_S)
        if line != "ready":
            err = self._abort()
            raise RuntimeError(f"the power-loss mount did not start: {line!r} {err}")

    def cut(self, mode: str = "drop") -> int:
        """Cut the power of a mount nobody uses any more (kill its processes first): undo
        every unsynced write (``"drop"``) or keep a random prefix of each file's
        (``"torn"``), then unmount. Returns how many writes were undone."""
        return self.power_cut(mode, [])

    def power_cut(self, mode: str, processes) -> int:
        """Cut the power now, while ``processes`` (``subprocess.Popen``s using the mount)
        run (``power_off``), then kill them and unmount (``take_down``). Returns how many
        writes the cut undid."""
        undone = self.power_off(mode)
        self.take_down(processes)
        return undone

    def power_off(self, mode: str) -> int:
        """The power goes at this instant, while the processes on the mount still run: the
        unsynced writes are undone (``"drop"``: all of them; ``"torn"``: all but a random
        prefix of each file's), and the file system answers no request after it (a write,
        or an fsync under way and not yet returned, is held, never done). Returns how many
        writes were undone. Follow with ``take_down`` (several mounts may be cut first, so
        that their machines lose power together)."""
        try:
            return int(self._command(f"cut {mode}", "cut ").split()[1])
        except BaseException:
            self._abort()
            raise

    def take_down(self, processes) -> None:
        """After ``power_off``: SIGKILL ``processes``, fail the requests they were left
        waiting on (so they can exit), wait until they exited, and unmount. Bounded: a
        process that does not exit within ``_EXIT_TIMEOUT_S`` raises."""
        try:
            for proc in processes:
                if proc.poll() is None:
                    os.kill(proc.pid, signal.SIGKILL)
            self._command("release", "released")
            for proc in processes:
                proc.wait(_EXIT_TIMEOUT_S)
        except BaseException:
            self._abort()
            raise
        self._end("unmount")

    def _command(self, command: str, expect: str) -> str:
        """Send ``command`` to the mounted file system, return its reply (starting with
        ``expect``)."""
        if self._proc is None:
            raise RuntimeError("not mounted")
        self._proc.stdin.write(command + "\n")
        self._proc.stdin.flush()
        reply = self._read_line(_STOP_TIMEOUT_S)
        if not reply.startswith(expect):
            raise RuntimeError(f"the power-loss mount did not answer {command!r}: {reply!r}")
        return reply

    def stop(self) -> None:
        """Unmount cleanly, keeping every write."""
        if self._proc is not None:
            self._end("unmount")

    def _end(self, command: str) -> str:
        proc = self._proc
        if proc is None:
            raise RuntimeError("not mounted")
        try:
            proc.stdin.write(command + "\n")
            proc.stdin.flush()
            out, err = proc.communicate(timeout=_STOP_TIMEOUT_S)
        except BaseException:
            self._abort()
            raise
        self._proc = None
        if proc.returncode != 0:
            raise RuntimeError(f"the power-loss mount failed ({proc.returncode}): {err}")
        return out.strip().splitlines()[-1] if out.strip() else ""

    def _read_line(self, timeout_s: float) -> str:
        with selectors.DefaultSelector() as sel:
            sel.register(self._proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout_s):
                return "<timed out>"
        return self._proc.stdout.readline().strip()

    def _abort(self) -> str:
        """Kill the server and force the mount away (after a failure)."""
        proc, self._proc = self._proc, None
        err = ""
        if proc is not None:
            proc.kill()
            try:
                _, err = proc.communicate(timeout=_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pass
        subprocess.run(["fusermount3", "-u", "-z", self.path], capture_output=True)
        return err or ""

    def __enter__(self) -> "PowerLossMount":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.stop()
        else:
            self._abort()
