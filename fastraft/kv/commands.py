"""The KV example's commands: what a NORMAL log entry of the KV store carries, and what
applying one does. Shared by every KV state machine, so that all replicas, whatever their
backend, give the same response to the same entry.

A payload is UTF-8 JSON, in the shape of openraft's raft-kv-memstore example::

    {"Set": {"key": k, "value": v}}
    {"Delete": {"key": k}}
    {"CompareAndSwap": {"key": k, "expected": v or null, "value": v}}

Keys are non-empty strings of at most MAX_KEY_BYTES in UTF-8 (a limit of lmdb's, imposed on
every backend so they behave alike); values are strings. The response of an apply is
``{"value": value after the write}`` (None when the key is absent), plus ``"swapped"`` for
a compare-and-swap. A payload that is not a valid command is still a committed entry: its
response is ``{"error": reason}`` and the state stays unchanged, on every replica alike.

The codec is orjson: every write passes through it three times on the leader (the request
body, the entry payload, the answer) and once on each follower (the apply), and it does each
in a quarter (decoding) to a twentieth (encoding) of the standard library's time
(``benchmarks/kv/json_codec.py``: 0.31 against 1.29 µs to decode a write, 0.19 against
3.75 µs to encode its answer). It is also stricter where strictness is wanted: a lone
surrogate escape (``"\\ud800"``), NaN and Infinity are not JSON it accepts, so no replica can
be handed text it cannot store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union

import orjson

from ..errors import CodecError

__all__ = [
    "MAX_KEY_BYTES",
    "Set",
    "Delete",
    "CompareAndSwap",
    "Command",
    "encode_command",
    "decode_command",
    "execute",
    "error_response",
]

#: The longest key, in UTF-8 bytes (lmdb's default maximum key size).
MAX_KEY_BYTES = 511


@dataclass(frozen=True, slots=True)
class Set:
    """Set ``key`` to ``value``."""

    key: str
    value: str


@dataclass(frozen=True, slots=True)
class Delete:
    """Remove ``key`` (no error if it is absent)."""

    key: str


@dataclass(frozen=True, slots=True)
class CompareAndSwap:
    """Set ``key`` to ``value`` only if its current value is ``expected`` (None: absent)."""

    key: str
    expected: str | None
    value: str


Command = Union[Set, Delete, CompareAndSwap]


def encode_command(command: Command) -> bytes:
    """The entry payload of ``command``; ValueError for a key or value out of bounds."""
    if isinstance(command, Set):
        doc = {"Set": {"key": command.key, "value": command.value}}
    elif isinstance(command, Delete):
        doc = {"Delete": {"key": command.key}}
    elif isinstance(command, CompareAndSwap):
        doc = {"CompareAndSwap": {"key": command.key, "expected": command.expected,
                                  "value": command.value}}
    else:
        raise TypeError(f"not a KV command: {type(command).__name__}")
    _check_fields(doc, ValueError, check_text=True)
    return orjson.dumps(doc)


_FIELDS = {
    "Set": ("key", "value"),
    "Delete": ("key",),
    "CompareAndSwap": ("key", "expected", "value"),
}


def _check_fields(doc, error: type[Exception], check_text: bool) -> tuple[str, dict]:
    """(command name, its fields) of a command document, else ``error``. ``check_text``:
    also refuse strings with lone surrogates (Python strings may hold them; text orjson
    decoded cannot)."""
    if not isinstance(doc, dict) or len(doc) != 1:
        raise error("a command is an object with exactly one of Set, Delete, CompareAndSwap")
    ((name, body),) = doc.items()
    if name not in _FIELDS:
        raise error(f"unknown command {name!r}")
    if not isinstance(body, dict) or set(body) != set(_FIELDS[name]):
        raise error(f"{name} takes exactly the fields {', '.join(_FIELDS[name])}")
    key = body["key"]
    if not isinstance(key, str) or not key:
        raise error(f"{name}: key must be a non-empty string")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise error(f"{name}: key longer than {MAX_KEY_BYTES} bytes")
    if check_text and _has_surrogates(key):
        raise error(f"{name}: key is not valid Unicode text")
    if "value" in body and (not isinstance(body["value"], str)
                            or check_text and _has_surrogates(body["value"])):
        raise error(f"{name}: value must be a string")
    if name == "CompareAndSwap":
        expected = body["expected"]
        if expected is not None and (not isinstance(expected, str)
                                     or check_text and _has_surrogates(expected)):
            raise error("CompareAndSwap: expected must be a string or null")
    return name, body


def _has_surrogates(text: str) -> bool:
    # a Python string may hold lone surrogates ("\ud800"), which cannot be stored as UTF-8
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def decode_command(payload: bytes) -> Command:
    """Parse an entry payload; CodecError (naming the problem) for anything that is not a
    valid command."""
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError as e:
        raise CodecError(f"command is not UTF-8 JSON: {e}") from None
    name, body = _check_fields(doc, CodecError, check_text=False)
    if name == "Set":
        return Set(body["key"], body["value"])
    if name == "Delete":
        return Delete(body["key"])
    return CompareAndSwap(body["key"], body["expected"], body["value"])


def error_response(reason: str) -> dict:
    return {"error": reason}


def execute(command: Command, get: Callable[[str], "str | None"]) -> tuple[object, dict]:
    """What ``command`` does to a store whose current values ``get`` returns.

    Returns (write, response): ``write`` is (key, new value) or (key, None) for a removal,
    or None if nothing changes; the caller performs it. Pure: the same command on the same
    state gives the same result on every replica.
    """
    if isinstance(command, Set):
        return (command.key, command.value), {"value": command.value}
    if isinstance(command, Delete):
        return (command.key, None), {"value": None}
    current = get(command.key)
    if current == command.expected:
        return (command.key, command.value), {"value": command.value, "swapped": True}
    return None, {"value": current, "swapped": False}
