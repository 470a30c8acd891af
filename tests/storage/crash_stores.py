"""The log stores the crash tests run against, by name: how each is opened on a directory.

``rocksdb`` is ``fastraft.storage.rocksdb_log.RocksLogStore``. ``lmdb-unsynced`` is the lmdb store with its environment's syncs turned off (``sync=False,
metasync=False, map_async=True``): a store that loses acknowledged writes at a power cut,
which the power-loss tests must catch.
"""

from fastraft.storage import LmdbLogStore
from fastraft.storage import lmdb_env


async def open_lmdb_unsynced(path):
    real_open = lmdb_env.lmdb.open

    def unsynced_open(*args, **kwargs):
        kwargs.update(sync=False, metasync=False, map_async=True)
        return real_open(*args, **kwargs)

    lmdb_env.lmdb.open = unsynced_open
    try:
        return await LmdbLogStore.open(path)
    finally:
        lmdb_env.lmdb.open = real_open


async def open_rocksdb(path):
    from fastraft.storage.rocksdb_log import RocksLogStore

    return await RocksLogStore.open(path)


OPENERS = {"lmdb": LmdbLogStore.open, "lmdb-unsynced": open_lmdb_unsynced,
           "rocksdb": open_rocksdb}


def durable_kinds():
    """The durable stores to crash: lmdb, and rocksdb when its extra is installed."""
    try:
        import rocksdict  # noqa: F401
    except ImportError:
        return ["lmdb"]
    return ["lmdb", "rocksdb"]
