"""Logging set-up for fastraft's commands, on the standard ``logging`` module.

fastraft logs through module loggers under ``fastraft`` and never configures logging itself
when used as a library. The commands call ``configure(verbosity, fmt)``:

* verbosity 0: INFO for the operator's loggers (``OPERATOR_LOGGERS``: the node's transitions,
  ``fastraft.runtime.oplog``, and the KV node's start and stop) and WARNING for the rest; 1 (``-v``): INFO everywhere; 2 (``-vv``): DEBUG, with the HTTP
  client's request lines;
* ``fmt="text"``: ``time level logger message``; ``fmt="json"``: one JSON object per line with
  ``ts``, ``level``, ``logger``, ``msg`` and every structured field the record carries
  (``node_id``, ``term``, ...), plus ``exc`` for a traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import IO

__all__ = ["FORMATS", "OPERATOR_LOGGERS", "JsonFormatter", "configure"]

FORMATS = ("text", "json")
#: Loggers whose INFO lines an operator reads at the default level.
OPERATOR_LOGGERS = ("fastraft.node", "fastraft.kv.server", "fastraft.kv.cli")

#: Attributes every LogRecord has: anything else on a record came in ``extra``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record; see the module docstring."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "ts": round(record.created, 6),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                doc[key] = value if isinstance(value, (int, float, str, bool, type(None))) \
                    else str(value)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, separators=(",", ":"))


def configure(verbosity: int = 0, fmt: str = "text", stream: IO[str] | None = None) -> None:
    """Send fastraft's log records to ``stream`` (stderr) at the level ``verbosity`` asks."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {FORMATS}, not {fmt!r}")
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[max(0, min(verbosity, 2))]
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in OPERATOR_LOGGERS:
        logging.getLogger(name).setLevel(min(level, logging.INFO))
    # the HTTP client logs every request at INFO: only at -vv
    logging.getLogger("httpx").setLevel(level if verbosity >= 2 else logging.WARNING)
    logging.getLogger("httpcore").setLevel(level if verbosity >= 2 else logging.WARNING)
