"""A KV node's data directory: which node it belongs to, and whether its stores are whole.

A directory is *claimed* once it holds the id file (``fastraft-kv-node.json``, ``{"id": n}``).
The id file is written only after the node's stores exist on disk (created and synced), so a
claimed directory without them has lost them: the node's vote and the entries it
acknowledged are gone. Starting it empty would break the promises it made to its peers
(Raft §5.2: one vote per term; §5.3: an acknowledged entry counts toward a majority), and
the attack that motivated this check did exactly that: a node whose files were truncated to
zero started empty, voted, and with a stale node formed a majority that lost ten
acknowledged writes. Such a node must rejoin as a new member, as etcd requires of a member
that lost its data: removed from the cluster, then added back under a new id.

Invariant: a claimed directory that ``check_claimed`` passes holds a non-empty data file
for the log and for the state machine (their contents are checked when they are opened), and
its log is of the kind the node is told to open.
"""

from __future__ import annotations

import json
import logging
import os
import shutil

from ..errors import ConfigError
from ..storage.store_kind import refuse_other_kind

__all__ = ["ID_FILE", "STORES", "owner_of", "check_claimed", "claim"]

log = logging.getLogger("fastraft.kv.data_dir")

ID_FILE = "fastraft-kv-node.json"
#: The node's stores: sub-directories of the data directory; the state is an lmdb environment,
#: the log one too or a RocksDB database (``log_store``).
STORES = ("log", "state")
#: The file whose loss means a store is gone: an lmdb environment's data file; a RocksDB
#: database's CURRENT (it names the manifest: the database does not open without it).
_DATA_FILES = {"lmdb": "data.mdb", "rocksdb": "CURRENT"}


def owner_of(path: str) -> int | None:
    """The node id the directory's id file names, or None if the directory is unclaimed."""
    id_file = os.path.join(path, ID_FILE)
    try:
        with open(id_file) as f:
            owner = json.load(f).get("id")
    except FileNotFoundError:
        return None
    except (ValueError, AttributeError, OSError) as e:
        raise ConfigError(f"{id_file} is unreadable: {e}") from None
    if type(owner) is not int:
        raise ConfigError(f"{id_file} names no node id: {owner!r}")
    return owner


def check_claimed(path: str, node_id: int, force_new_store: bool,
                  log_store: str = "lmdb") -> bool:
    """Before the stores open: ConfigError if ``path`` belongs to another node, or belongs to
    this one but lost a store (missing or empty data file), unless ``force_new_store``; then
    the lost stores' leftovers are removed so that they start empty. StorageError if its log
    is of another kind than ``log_store`` ("lmdb" or "rocksdb"). Returns whether the
    directory was already claimed."""
    owner = owner_of(path)
    if owner is None:
        return False
    if owner != node_id:
        raise ConfigError(f"{path} holds the data of node {owner}, not node {node_id}")
    refuse_other_kind(os.path.join(path, "log"), log_store)
    files = {"log": os.path.join(path, "log", _DATA_FILES[log_store]),
             "state": os.path.join(path, "state", _DATA_FILES["lmdb"])}
    lost = [name for name in STORES if _lost(files[name])]
    if not lost:
        return True
    what = " and ".join(f"its {name} store ({files[name]})" for name in lost)
    if not force_new_store:
        raise ConfigError(
            f"{path} belongs to node {node_id}, but {what} is missing or empty: this node's "
            "vote and the log entries it acknowledged are lost, and starting it empty could "
            "lose committed writes (it would vote and acknowledge again as if it had promised "
            f"nothing). To bring it back, remove node {node_id} from the cluster "
            "(change-membership without it), delete this directory, and add the node back "
            "under a new id, as etcd requires of a member that lost its data. To start it "
            "empty anyway, knowing the risk, pass --force-new-store")
    log.warning("%s: starting node %d with %s empty (--force-new-store)", path, node_id, what)
    for name in lost:
        if name == "log" and log_store == "rocksdb":  # a database without its CURRENT
            shutil.rmtree(os.path.join(path, name), ignore_errors=True)
            continue
        for leftover in (_DATA_FILES["lmdb"], "lock.mdb"):
            try:
                os.remove(os.path.join(path, name, leftover))
            except FileNotFoundError:
                pass
    return True


def claim(path: str, node_id: int) -> None:
    """Write the id file (synced, then the directory synced): call it once the stores exist
    on disk, so that a claimed directory always had them."""
    id_file = os.path.join(path, ID_FILE)
    tmp = id_file + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"id": node_id}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, id_file)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _lost(data_file: str) -> bool:
    try:
        return os.path.getsize(data_file) == 0
    except FileNotFoundError:
        return True
