"""Free TCP ports on the loopback address, for tests and benchmarks that start nodes as
separate processes and must give each its address before it starts."""

from __future__ import annotations

import socket

__all__ = ["free_ports"]


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct ports free on ``host`` when this returns: all are bound at once, so no
    two are the same, then released. (Another process may take one before it is used; on a
    test machine's loopback that is rare enough.)"""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()
