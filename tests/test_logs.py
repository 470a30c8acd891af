"""fastraft.logs: the commands' logging set-up (levels per verbosity, JSON lines with the
records' structured fields)."""

import io
import json
import logging

import pytest

from fastraft.logs import configure


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    saved = (list(root.handlers), root.level,
             {n: logging.getLogger(n).level for n in ("fastraft.node", "fastraft.kv.server",
                                                     "fastraft.kv.cli", "httpx", "httpcore")})
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


def test_json_lines_carry_node_id_and_term(restore_logging):
    out = io.StringIO()
    configure(0, "json", stream=out)
    logging.getLogger("fastraft.node").info("node %d term %d: elected leader", 1, 7,
                                            extra={"node_id": 1, "term": 7})
    logging.getLogger("fastraft.runtime.peers").info("dial noise, hidden at the default level")
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    doc = json.loads(lines[0])
    assert doc["msg"] == "node 1 term 7: elected leader" and doc["level"] == "INFO"
    assert (doc["node_id"], doc["term"], doc["logger"]) == (1, 7, "fastraft.node")


def test_verbosity_keeps_its_meaning(restore_logging):
    out = io.StringIO()
    configure(1, "text", stream=out)
    logging.getLogger("fastraft.runtime.peers").info("info from every part at -v")
    logging.getLogger("fastraft.runtime.peers").debug("debug only at -vv")
    configure(2, "text", stream=out)
    logging.getLogger("fastraft.runtime.peers").debug("debug at -vv")
    text = out.getvalue()
    assert "info from every part" in text and "debug at -vv" in text
    assert "debug only at -vv" not in text
    with pytest.raises(ValueError):
        configure(0, "xml")
