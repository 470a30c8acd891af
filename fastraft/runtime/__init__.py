"""The trio node: ``open_raft`` runs a Raft node inside the caller's trio program and yields
its ``Raft`` handle. See ``raft`` (the API), ``node`` (the engine task and how each command is
executed), ``log_writer``, ``applier``, ``peers``, ``inbound``, ``proposals`` (the executors),
``metrics`` (metrics and waits) and ``startup`` (what a node starts from).
"""

from .metrics import RaftMetrics, ServerState, Wait, WaitTimeout
from .raft import Raft, Trigger, open_raft

__all__ = ["open_raft", "Raft", "Trigger", "RaftMetrics", "ServerState", "Wait", "WaitTimeout"]
