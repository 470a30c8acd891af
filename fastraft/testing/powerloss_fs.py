"""A power-loss file system for tests (after the idea of Jepsen's LazyFS): a FUSE pass-through
over a backing directory that remembers, for every file, the writes made since its last
fsync/fdatasync, and on a *cut* takes them back (``powerloss_journal``), as a machine that
loses power loses what its caches held.

A store under test keeps its data directory on the mount. Killing the store's process with
SIGKILL alone proves little: the kernel's page cache survives the process, so a missing fsync
goes unseen. Cutting the power while the process runs, then killing it and mounting again,
shows only what was synced before the cut.

The cut is an instant, taken while the store runs: the unsynced writes are undone then, and
from then on the file system answers nothing (the machine is off). Every request that arrives
after the cut, or was queued behind it (a write, an fsync the store had started and not seen
return: a sync half done), is held unanswered, so the store can neither change a file nor
learn that a write it started became durable, and so cannot tell a peer anything that
depends on it. Once the process is killed, ``release`` fails the held requests (EIO) so that
it can exit; nothing reaches the backing files after the cut.

Run as a process of its own (the mount serves requests on trio, with pyfuse3), controlled by
lines on stdin; ``powerloss_mount.PowerLossMount`` does that from a test::

    python -m fastraft.testing.powerloss_fs BACKING MOUNTPOINT SEED
    stdin:  "cut drop" | "cut torn"   the power goes: undo the unsynced writes (all of them,
                                       or all but a random prefix), hold every later request
            "release"                  (after the kill) fail the held and later requests
            "unmount"                  unmount and exit (without a cut: a clean shutdown that
                                       keeps everything)
    stdout: "ready" once mounted; "cut <undone changes>", "released", "unmounted"

Kernel caching: writes are not cached in the kernel (no writeback cache), so each write
reaches this process when it is made and each fsync here when it is called; files are not
opened with direct_io, so a store may mmap them for reading (lmdb does). A remount starts
with an empty page cache, so nothing undone stays visible.

Invariant: every handler but ``release``/``releasedir`` (closing a backing descriptor, which
changes no file) passes ``_powered`` before it touches a backing file, and handlers never
await after it: so a handler runs wholly before the cut or not at all.
"""

from __future__ import annotations

import errno
import os
import random
import stat
import sys

import pyfuse3
import trio

from .powerloss_journal import CUT_MODES, UnsyncedJournal

__all__ = ["PowerLossOperations", "main"]

#: Longest a request waits, held after a cut, for ``release`` (then it fails): a test that
#: dies between the cut and the kill leaves no process stuck on the mount for ever.
_HOLD_MAX_S = 120.0


class PowerLossOperations(pyfuse3.Operations):
    """Pass-through operations on ``root`` that journal unsynced writes.

    Inodes are this mount's own numbers for backing paths (``self._paths``); they are not
    kept across mounts. File handles are backing file descriptors.
    """

    enable_writeback_cache = False

    def __init__(self, root: str) -> None:
        super().__init__()
        self.root = os.path.abspath(root)
        self.journal = UnsyncedJournal()
        self._paths: dict[int, str] = {pyfuse3.ROOT_INODE: self.root}
        self._inodes: dict[str, int] = {self.root: pyfuse3.ROOT_INODE}
        self._next_inode = pyfuse3.ROOT_INODE + 1
        self._fd_inode: dict[int, int] = {}
        self.power_off = False  # the power was cut: no request is answered any more
        self._released = trio.Event()  # after the cut: the held requests may fail now

    # -- power --------------------------------------------------------------------------

    async def _powered(self) -> None:
        """Return if the power is on; after the cut, wait for ``release`` and fail (EIO)."""
        if not self.power_off:
            return
        with trio.move_on_after(_HOLD_MAX_S):
            await self._released.wait()
        raise pyfuse3.FUSEError(errno.EIO)

    def cut(self, mode: str, rng: random.Random) -> int:
        """The power goes now: undo the unsynced writes and answer nothing from here on.
        Returns how many changes were undone."""
        if self.power_off:
            return 0
        self.power_off = True
        return self.journal.cut(self.path_of, mode, rng)

    def release_held(self) -> None:
        """The processes on the mount are killed: fail what is held, so they can exit."""
        self._released.set()

    # -- inode table ----------------------------------------------------------------------

    def _inode_of(self, path: str) -> int:
        ino = self._inodes.get(path)
        if ino is None:
            ino = self._inodes[path] = self._next_inode
            self._paths[ino] = path
            self._next_inode += 1
        return ino

    def _path(self, ino: int) -> str:
        """The backing path of ``ino``; ENOENT once its name is gone. Every handler looks
        names up through this: an exception other than FUSEError would end the mount."""
        try:
            return self._paths[ino]
        except KeyError:
            raise pyfuse3.FUSEError(errno.ENOENT) from None

    def _child(self, parent: int, name: bytes) -> str:
        return os.path.join(self._path(parent), os.fsdecode(name))

    def path_of(self, ino: int) -> str | None:
        path = self._paths.get(ino)
        return path if path is not None and os.path.exists(path) else None

    def _attrs(self, path: str, ino: int) -> pyfuse3.EntryAttributes:
        try:
            st = os.lstat(path)
        except OSError as e:
            raise pyfuse3.FUSEError(e.errno) from None
        return self._entry(st, ino)

    @staticmethod
    def _entry(st: os.stat_result, ino: int) -> pyfuse3.EntryAttributes:
        a = pyfuse3.EntryAttributes()
        a.st_ino = ino
        a.generation = 0
        a.entry_timeout = 0
        a.attr_timeout = 0
        for name in ("st_mode", "st_nlink", "st_uid", "st_gid", "st_rdev", "st_size",
                     "st_blksize", "st_blocks", "st_atime_ns", "st_mtime_ns", "st_ctime_ns"):
            setattr(a, name, getattr(st, name))
        return a

    # -- names ----------------------------------------------------------------------------

    async def lookup(self, parent_inode, name, ctx=None):
        await self._powered()
        path = self._child(parent_inode, name)
        if name in (b".", b".."):
            path = os.path.normpath(path)
        return self._attrs(path, self._inode_of(path))

    async def getattr(self, inode, ctx=None):
        await self._powered()
        path = self._paths.get(inode)
        if path is not None:
            return self._attrs(path, inode)
        # unlinked or replaced while still open (a snapshot file a reader holds): its fd
        for fd, ino in list(self._fd_inode.items()):
            if ino == inode:
                try:
                    return self._entry(os.fstat(fd), inode)
                except OSError as e:
                    raise pyfuse3.FUSEError(e.errno) from None
        raise pyfuse3.FUSEError(errno.ENOENT)

    async def setattr(self, inode, attr, fields, fh, ctx):
        await self._powered()
        path = self._path(inode)
        try:
            if fields.update_size:
                fd = fh if fh is not None else os.open(path, os.O_RDWR)
                try:
                    self.journal.before_truncate(inode, fd, attr.st_size)
                    os.ftruncate(fd, attr.st_size)
                finally:
                    if fh is None:
                        os.close(fd)
            if fields.update_mode:
                os.chmod(path, stat.S_IMODE(attr.st_mode))
            if fields.update_uid or fields.update_gid:
                os.chown(path, attr.st_uid if fields.update_uid else -1,
                         attr.st_gid if fields.update_gid else -1)
            if fields.update_atime or fields.update_mtime:
                st = os.lstat(path)
                os.utime(path, ns=(attr.st_atime_ns if fields.update_atime else st.st_atime_ns,
                                   attr.st_mtime_ns if fields.update_mtime else st.st_mtime_ns))
        except OSError as e:
            raise pyfuse3.FUSEError(e.errno) from None
        return self._attrs(path, inode)

    async def mkdir(self, parent_inode, name, mode, ctx):
        await self._powered()
        path = self._child(parent_inode, name)
        try:
            os.mkdir(path, mode)
        except OSError as e:
            raise pyfuse3.FUSEError(e.errno) from None
        return self._attrs(path, self._inode_of(path))

    async def unlink(self, parent_inode, name, ctx):
        await self._powered()
        path = self._child(parent_inode, name)
        try:
            os.unlink(path)
        except OSError as e:
            raise pyfuse3.FUSEError(e.errno) from None
        self._drop_path(path)

    async def rmdir(self, parent_inode, name, ctx):
        await self._powered()
        path = self._child(parent_inode, name)
        try:
            os.rmdir(path)
        except OSError as e:
            raise pyfuse3.FUSEError(e.errno) from None
        self._drop_path(path)

    def _drop_path(self, path: str) -> None:
        ino = self._inodes.pop(path, None)
        if ino is not None:
            self.journal.forget(ino)
            self._paths.pop(ino, None)

    async def rename(self, parent_inode_old, name_old, parent_inode_new, name_new, flags, ctx):
        await self._powered()
        if flags:
            raise pyfuse3.FUSEError(errno.EINVAL)
        old = self._child(parent_inode_old, name_old)
        new = self._child(parent_inode_new, name_new)
        try:
            os.rename(old, new)
        except OSError as e:
            raise pyfuse3.FUSEError(e.errno) from None
        self._drop_path(new)  # a replaced file is gone, with its unsynced writes
        ino = self._inodes.pop(old, None)
        if ino is not None:
            self._inodes[new] = ino
            self._paths[ino] = new
            prefix = old + os.sep  # a renamed directory moves everything below it
            for p in [p for p in self._inodes if p.startswith(prefix)]:
                i = self._inodes.pop(p)
                self._inodes[new + p[len(old):]] = i
                self._paths[i] = new + p[len(old):]

    async def statfs(self, ctx):
        await self._powered()
        st = os.statvfs(self.root)
        s = pyfuse3.StatvfsData()
        for name in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files",
                     "f_ffree", "f_favail", "f_namemax"):
            setattr(s, name, getattr(st, name))
        return s

    # -- directories ----------------------------------------------------------------------

    async def opendir(self, inode, ctx):
        await self._powered()
        return inode

    async def readdir(self, fh, start_id, token):
        await self._powered()
        path = self._path(fh)
        try:
            names = sorted(os.listdir(path))
        except OSError as e:
            raise pyfuse3.FUSEError(e.errno) from None
        for i, name in enumerate(names[start_id:], start_id):
            child = os.path.join(path, name)
            ino = self._inode_of(child)
            try:
                attrs = self._attrs(child, ino)
            except pyfuse3.FUSEError:
                continue
            if not pyfuse3.readdir_reply(token, os.fsencode(name), attrs, i + 1):
                break

    async def releasedir(self, fh):
        pass

    async def fsyncdir(self, fh, datasync):
        await self._powered()
        pass  # metadata is durable at once here (see powerloss_journal)

    # -- files ----------------------------------------------------------------------------

    async def open(self, inode, flags, ctx):
        await self._powered()
        try:
            fd = os.open(self._path(inode), _backing_flags(flags & ~os.O_CREAT))
        except OSError as e:
            raise pyfuse3.FUSEError(e.errno) from None
        self._fd_inode[fd] = inode
        return pyfuse3.FileInfo(fh=fd)

    async def create(self, parent_inode, name, mode, flags, ctx):
        await self._powered()
        path = self._child(parent_inode, name)
        try:
            fd = os.open(path, _backing_flags(flags) | os.O_CREAT | os.O_TRUNC, mode)
        except OSError as e:
            raise pyfuse3.FUSEError(e.errno) from None
        ino = self._inode_of(path)
        self._fd_inode[fd] = ino
        return pyfuse3.FileInfo(fh=fd), self._attrs(path, ino)

    async def read(self, fh, off, size):
        await self._powered()
        try:
            return os.pread(fh, size, off)
        except OSError as e:
            raise pyfuse3.FUSEError(e.errno) from None

    async def write(self, fh, off, buf):
        await self._powered()
        try:
            self.journal.before_write(self._fd_inode[fh], fh, off, len(buf))
            return os.pwrite(fh, buf, off)
        except OSError as e:
            raise pyfuse3.FUSEError(e.errno) from None

    async def fsync(self, fh, datasync):
        await self._powered()
        self.journal.synced(self._fd_inode[fh])

    async def flush(self, fh):
        await self._powered()

    async def release(self, fh):
        self._fd_inode.pop(fh, None)
        os.close(fh)


def _backing_flags(flags: int) -> int:
    """The flags to open a backing file with: readable too (the journal reads what a write
    overwrites), and without O_APPEND (the kernel sends each write's offset)."""
    if flags & os.O_ACCMODE == os.O_WRONLY:
        flags = (flags & ~os.O_ACCMODE) | os.O_RDWR
    return flags & ~os.O_APPEND


async def _control(ops: PowerLossOperations, rng: random.Random) -> None:
    """Run commands from stdin until one ends the mount (or stdin closes)."""
    stdin = trio.lowlevel.FdStream(os.dup(0))
    buf = b""
    for _ in range(1_000_000):  # bounded: a test sends a handful of commands per mount
        while b"\n" not in buf:
            chunk = await stdin.receive_some(4096)
            if not chunk:
                buf = b"unmount\n"
                break
            buf += chunk
        line, buf = buf.split(b"\n", 1)
        words = line.decode().split()
        if words[:1] == ["cut"] and len(words) == 2 and words[1] in CUT_MODES:
            print(f"cut {ops.cut(words[1], rng)}", flush=True)
        elif words == ["release"]:
            ops.release_held()
            print("released", flush=True)
        elif words == ["unmount"]:
            break
        else:
            print(f"error unknown command {line!r}", flush=True)
    ops.release_held()
    await stdin.aclose()
    pyfuse3.terminate()
    print("unmounted", flush=True)


async def _serve(ops: PowerLossOperations, rng: random.Random) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pyfuse3.main)
        print("ready", flush=True)
        await _control(ops, rng)


def main(argv: list[str]) -> None:
    backing, mountpoint, seed = argv
    ops = PowerLossOperations(backing)
    options = set(pyfuse3.default_options) | {"fsname=powerloss"}
    pyfuse3.init(ops, mountpoint, options)
    try:
        trio.run(_serve, ops, random.Random(int(seed)))
    finally:
        pyfuse3.close(unmount=True)


if __name__ == "__main__":
    main(sys.argv[1:])
