"""Helpers of the lmdb log store's tests: entries, a filled store, and raw access to the
environment (as a disk fault, another program or an older build would change it)."""

import lmdb

from fastraft import Entry, Vote
from fastraft.codec import decode_entries
from fastraft.storage import LmdbLogStore
from fastraft.storage.lmdb_log_layout import index_of


def entries(lo, hi, term=1, size=20):
    """Entries [lo, hi) of ``term``, with payloads of ``size`` bytes that name their index."""
    return [Entry(term, i, 1, (b"%d:" % i).ljust(size, b"x")) for i in range(lo, hi)]


async def filled(path, n=20, batch=5, **options):
    """A store holding entries [1, n] of term 1, appended ``batch`` at a time (so in blocks
    of ``batch``), and a vote."""
    store = await LmdbLogStore.open(path, **options)
    for lo in range(1, n + 1, batch):
        await store.append(entries(lo, min(lo + batch, n + 1)))
    await store.save_vote(Vote(2, 1))
    return store


def tamper(path, fn):
    """Run ``fn(txn, log_db, meta_db)`` in a raw lmdb write transaction on the store's
    environment (the store must be closed)."""
    env = lmdb.open(str(path), max_dbs=8)
    try:
        with env.begin(write=True) as txn:
            return fn(txn, env.open_db(b"log", txn=txn), env.open_db(b"log_meta", txn=txn))
    finally:
        env.close()


def raw_items(path):
    """Every (key, value) of the log and meta sub-databases, to tell that nothing changed."""
    def read(txn, log, meta):
        return list(txn.cursor(db=log)), list(txn.cursor(db=meta))
    return tamper(path, read)


def block_spans(path):
    """[(first, last)] of every stored block, in key order, from the raw environment."""
    def read(txn, log, meta):
        spans = []
        for key, value in txn.cursor(db=log):
            got = decode_entries(value)
            assert got[0].index == index_of(key)
            spans.append((got[0].index, got[-1].index))
        return spans
    return tamper(path, read)
