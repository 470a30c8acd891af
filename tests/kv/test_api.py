"""The API's JSON, without a node: request parsing, and error answers that the client turns
back into the exceptions the server raised."""

import pytest

from fastraft import ForwardToLeader, LogId, OutcomeUnknown, RaftShutdown
from fastraft.core import LeaderTransferring, MembershipError
from fastraft.errors import CodecError
from fastraft.kv import CompareAndSwap, Delete, Set, decode_command, encode_command
from fastraft.kv.answers import (err_body, error_from_json, error_json, error_status,
                                 log_id_json, write_result_from_json)
from fastraft.kv.api import (APIError, BadRequest, Fatal, Unavailable, check_addr, make_node,
                             parse_add_learner, parse_change_membership, parse_init, parse_key,
                             parse_write)


def test_parse_write_accepts_the_three_commands():
    assert parse_write(b'{"Set": {"key": "k", "value": "v"}}') == Set("k", "v")
    assert parse_write(b'{"Delete": {"key": "k"}}') == Delete("k")
    assert parse_write(b'{"CompareAndSwap": {"key": "k", "expected": null, "value": "v"}}') == \
        CompareAndSwap("k", None, "v")
    assert parse_write('{"Set": {"key": "ключ", "value": "☃"}}'.encode()) == Set("ключ", "☃")


@pytest.mark.parametrize("key, ok", [
    ("k" * 511, True), ("k" * 512, False),           # one byte per code point
    ("😀" * 127, True), ("😀" * 128, False),           # four: 508 and 512 bytes
    ("ключ" * 63 + "k" * 6, True),                   # two: 504 + 6 = 510 bytes
    ("ключ" * 63 + "k" * 8, False),                  # 512 bytes in 260 code points
])
def test_a_key_is_bounded_in_utf8_bytes_not_code_points(key, ok):
    """MAX_KEY_BYTES (511) counts UTF-8 bytes, at the bound exactly, for keys of one to four
    bytes per code point, in requests and in entries alike."""
    body = ('{"Set": {"key": "%s", "value": "v"}}' % key).encode()
    if ok:
        assert parse_write(body) == Set(key, "v")
        assert decode_command(encode_command(Set(key, "v"))) == Set(key, "v")
    else:
        with pytest.raises(BadRequest, match="key longer than 511 bytes"):
            parse_write(body)
        with pytest.raises(CodecError, match="key longer than 511 bytes"):
            decode_command(body)
        with pytest.raises(ValueError, match="key longer than 511 bytes"):
            encode_command(Set(key, "v"))


@pytest.mark.parametrize("body", [
    b'{"Set": {"key": "k"}}', b'{"Set": {"key": "k", "value": "v", "x": 1}}',
    b'{"Set": {"key": "k", "expected": null}}', b'{"Delete": {"key": "k", "value": "v"}}',
    b'{"CompareAndSwap": {"key": "k", "value": "v"}}', b'{"Put": {"key": "k"}}',
    b'{"Set": ["key", "value"]}',
])
def test_a_command_takes_exactly_its_fields(body):
    with pytest.raises(BadRequest):
        parse_write(body)


def test_parse_members():
    assert parse_init([]) == []
    assert parse_init([[1, "127.0.0.1:1"], [2, "h:2", "h:3"]]) == [(1, "127.0.0.1:1", None),
                                                                   (2, "h:2", "h:3")]
    assert parse_add_learner([3, "[::1]:9"]) == (3, "[::1]:9", None)
    assert parse_change_membership([3, 1, 3]) == frozenset({1, 3})
    assert parse_key("k") == "k"
    for bad in ([1], [1, "a:1", "b:2", "c:3"], [-1, "a:1"], [1.0, "a:1"], [1, "a:99999"],
                [1, ":1"], [1, "a" * 300 + ":1"], None, "x"):
        with pytest.raises(BadRequest):
            parse_add_learner(bad)
    with pytest.raises(BadRequest):
        parse_change_membership(list(range(1, 2000)))
    with pytest.raises(BadRequest):
        check_addr("host")


ROUND_TRIPS = [
    ForwardToLeader(2, make_node("127.0.0.1:21002", "127.0.0.1:22002")),
    ForwardToLeader(None, None),
    OutcomeUnknown("leadership was lost before the write committed"),
    Unavailable("busy"),
    MembershipError("already initialized"),
    BadRequest("the body is not UTF-8 JSON"),
    Fatal("StorageError: disk full"),
]


@pytest.mark.parametrize("error", ROUND_TRIPS, ids=lambda e: type(e).__name__)
def test_errors_survive_the_wire(error):
    import json

    doc = json.loads(err_body(error_json(error)))
    back = error_from_json(error_status(doc["Err"]), doc)
    assert type(back) is type(error)
    if isinstance(error, ForwardToLeader):
        assert back.leader_id == error.leader_id
        assert back.leader_node == error.leader_node
    else:
        assert str(back) == str(error)


def test_error_kinds_say_whether_a_write_may_be_resent():
    assert "Unavailable" in error_json(LeaderTransferring(3))["APIError"]
    # a shutdown before the answer: for a write the entry may have been appended
    assert "OutcomeUnknown" in error_json(RaftShutdown("bye"), write=True)["APIError"]
    assert "Unavailable" in error_json(RaftShutdown("bye"))["APIError"]
    assert error_status(error_json(BadRequest("x"))) == 400
    assert error_status(error_json(RuntimeError("boom"))) == 500
    assert error_status(error_json(ForwardToLeader(1, None))) == 200


def test_answers_of_unknown_shape_are_api_errors():
    assert isinstance(error_from_json(502, "gateway"), APIError)
    assert isinstance(error_from_json(200, {"Err": {"APIError": {"Teapot": {}}}}), APIError)
    with pytest.raises(APIError):
        write_result_from_json({"log_id": 3})
    ok = write_result_from_json({"log_id": log_id_json(LogId(2, 7), 1), "data": {"value": "v"}})
    assert (ok.log_id, ok.leader_id, ok.value, ok.swapped) == (LogId(2, 7), 1, "v", None)
