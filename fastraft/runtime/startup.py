"""What a node starts from: its stores read back (and repaired where a crash left them out of
step, ``fastraft.storage.recover_state``) and turned into the engine's ``InitialState``.

Re-applying what a crash took from the state machine: a state machine may lose the applies
after its last durable point (``fastraft.storage.protocols.StateMachine``). The engine starts
at the applied index the freshly opened state machine reports (what the crash left), never at
one remembered elsewhere, so every committed entry after it is applied again from the log:
those up to the committed id the log store saved before the engine starts (``recover_state``),
the rest once the engine learns the commit index (Raft §5.3: a follower from its leader's
AppendEntries, a leader by committing an entry of its term). The log still holds them: the
engine purges only up to a snapshot, and a snapshot is durable state (``fastraft.core.snapshot``).

The saved committed id is the one the node knew when it made its last append durable: the log
writer notes the engine's commit index to the store before each append, and the store writes
it in that append's own synced write (``LogStore.note_committed``), as etcd saves its
HardState's commit with the entries of the same Ready. So a node restarted alone, with no
leader to tell it anything, still re-applies everything it knew committed then, at no sync of
its own per write. What it learned later without appending (the commit of its last entries,
from a heartbeat) waits for a leader again: thesis §3.8, the commit index is volatile state
and may be lost; saving it is for liveness, never needed for safety.

The engine needs the log's terms as runs ``(term, last_index)`` rather than the entries, so a
node with a million entries starts without reading them: ``term_run_probes`` binary-searches
the term boundaries, O(runs * log n) single-entry reads.
"""

from __future__ import annotations

from ..core import InitialState, term_run_probes
from ..errors import StorageError
from ..storage import LogStore, StateMachine, read_entry, recover_state

__all__ = ["load_engine_state"]


async def load_engine_state(log_store: LogStore, state_machine: StateMachine) -> InitialState:
    """Read both stores and return the engine's starting state. StorageError if they do not
    hold a consistent durable state."""
    st = await recover_state(log_store, state_machine)
    snapshot = await state_machine.get_current_snapshot()
    snapshot_meta = None
    if snapshot is not None:
        snapshot_meta = snapshot.meta
        snapshot.close()

    purged = st.last_purged_log_id
    first = purged.index + 1 if purged is not None else 1
    last = st.last_log_id.index if st.last_log_id is not None else 0
    runs: tuple = ()
    if last >= first:
        # the search is the engine's (sans-I/O); the reads are awaited here, on the trio
        # thread, so the search costs no thread hand-off per read
        probes = term_run_probes(first, last)
        try:
            index = next(probes)
            while True:
                entry = await read_entry(log_store, index)
                if entry is None:
                    raise StorageError(f"log entry {index} is missing inside the log's range")
                index = probes.send(entry.term)
        except StopIteration as done:
            runs = done.value

    ms = st.membership
    return InitialState(
        vote=st.vote,
        purged=purged,
        log_runs=runs,
        committed=st.committed.index if st.committed is not None else 0,
        # where the state machine is after the crash, not where it was: the re-apply
        applied=st.last_applied.index if st.last_applied is not None else 0,
        membership=ms.effective,
        prev_membership=ms.committed,
        snapshot=snapshot_meta,
    )
