"""The Raft engine: a deterministic, sans-I/O state machine (models: etcd-io/raft's RawNode,
openraft's Engine/Command split).

It does no I/O, reads no clock and draws no random number of its own: time comes in with
``tick(now)`` and randomness from the ``seed`` given at construction, so the same inputs
always give the same commands. The simulator, the paper tests and the trio runtime all drive
this one implementation.

Inputs (methods of ``Engine``):

* time: ``tick(now)``; ``next_deadline()`` says when the next timer is due;
* messages: ``step(msg)`` for every ``fastraft.messages`` request and response (one that is
  malformed or from a stranger is dropped and counted in ``dropped``; see ``guard.py``);
* proposals: ``propose(payloads) -> LogId`` (one batch, leader only; raises
  ForwardToLeader / LeaderTransferring);
* storage completions: ``on_vote_saved(vote)``, ``on_log_flushed(log_id)``,
  ``on_snapshot_built(meta)``, ``on_snapshot_installed(meta)``,
  ``on_entries_read(node_id, lo, entries)``,
  ``on_snapshot_chunk_read(node_id, snapshot_id, offset, data, done)``;
* admin: ``initialize(request_id, nodes)``, ``add_learner(request_id, node_id, node,
  blocking)``, ``change_membership(request_id, voters, retain)``,
  ``remove_learners(request_id, node_ids)``, ``transfer_leader(request_id, target)``,
  ``trigger_elect()``, ``trigger_heartbeat()``,
  ``trigger_snapshot()``, ``trigger_purge(upto)``;
* reads: ``read_index(request_id)``.

Outputs: ``take_commands() -> list[Command]`` (see ``fastraft.core.commands`` for each command
and for the runtime's obligations). Requests with a ``request_id`` are answered by exactly one
``Respond`` (or ``ReadReady``) command; peers' requests stepped with a ``reply_to`` token by
exactly one ``SendMessage`` or ``NoAnswer`` carrying it.
"""

from fastraft.errors import Busy, LeaderTransferring, MembershipError, TransferFailed

from .commands import (
    AppendLog,
    ApplyEntries,
    BuildSnapshot,
    Command,
    InstallSnapshot,
    MembershipChanged,
    NoAnswer,
    PurgeLog,
    ReadLog,
    ReadReady,
    ReadSnapshotChunk,
    Respond,
    SaveSnapshotChunk,
    SaveVote,
    SendMessage,
    StateChanged,
    TruncateLog,
)
from . import commands as _commands
from .config import Config
from .engine import Engine
from .state import InitialState, Role, scan_term_runs, term_run_probes

__all__ = [
    "Engine",
    "Config",
    "InitialState",
    "Role",
    "scan_term_runs",
    "term_run_probes",
    *_commands.__all__,
    "LeaderTransferring",
    "TransferFailed",
    "MembershipError",
    "Busy",
]
