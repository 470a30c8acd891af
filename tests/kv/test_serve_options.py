"""``fastraft-kv serve``'s options become the node's settings: --lease-read, TLS for both
ports, and every listener limit (``fastraft.kv.serve_options``); and the read-round counters
reach /metrics and /metrics/prometheus."""

import dataclasses

import pytest
import trio

from fastraft.errors import ConfigError
from fastraft.kv.certs import make_pki
from fastraft.kv.cli import build_parser
from fastraft.kv.http_server import Limits
from fastraft.kv.serve_options import node_options
from fastraft.net.limits import ListenerLimits

from kv_fixtures import KVTestCluster, run

BASE = ["serve", "--id", "2", "--addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0"]


def options(*extra):
    return node_options(build_parser().parse_args([*BASE, *extra]))


def test_defaults_are_the_limits_classes_defaults_and_no_lease():
    o = options()
    assert o.http_limits == Limits() and o.raft_limits == ListenerLimits()
    assert o.config.lease_read is False and o.api_tls is None and o.peer_tls is None


def test_snapshots_come_at_etcds_default_count_and_the_option_sets_it():
    # thesis §5.1: the log grows well past a snapshot's size between two snapshots; every
    # 5,000 entries (the engine's default) all three nodes stalled together at 64 clients
    assert options().config.snapshot_policy_logs_since_last == 100_000
    assert options("--snapshot-every", "500").config.snapshot_policy_logs_since_last == 500
    assert options("--snapshot-every", "0").config.snapshot_policy_logs_since_last == 0


def test_the_log_store_option_picks_the_durable_log_and_refuses_others():
    assert options().log_store == "lmdb"
    assert options("--store", "lmdb", "--data", "d", "--log-store", "rocksdb").log_store == "rocksdb"
    with pytest.raises(SystemExit):  # argparse: not one of the choices
        build_parser().parse_args([*BASE, "--log-store", "sqlite"])
    with pytest.raises(ConfigError, match="log_store must be one of"):
        dataclasses.replace(options(), log_store="sqlite").check()


def test_lease_read_turns_the_engines_lease_on():
    o = options("--lease-read")
    # the lease needs check-quorum (thesis §6.4.1), on by default
    assert o.config.lease_read is True and o.config.check_quorum is True
    assert dataclasses.replace(o.config, lease_read=False) == options().config


def test_every_limit_is_an_option():
    o = options("--http-max-connections", "7", "--http-handshake-timeout", "2.5",
                "--http-max-body-bytes", "4096", "--raft-max-connections", "9",
                "--raft-idle-timeout", "30", "--raft-max-buffered-bytes", "65536")
    assert o.http_limits == Limits(max_connections=7, handshake_timeout_s=2.5,
                                   max_body_bytes=4096)
    assert o.raft_limits == ListenerLimits(max_connections=9, idle_timeout_s=30.0,
                                           max_buffered_bytes=65536)
    help_text = build_parser()._subparsers._group_actions[0].choices["serve"].format_help()
    for f in dataclasses.fields(Limits):
        assert "--http-" + f.name.removesuffix("_s").replace("_", "-") in help_text
    for f in dataclasses.fields(ListenerLimits):
        assert "--raft-" + f.name.removesuffix("_s").replace("_", "-") in help_text
    assert "(default: 1000)" in help_text and "(default: 256)" in help_text


def test_the_node_certificate_serves_both_ports(tmp_path):
    pki = make_pki(str(tmp_path), "c9", [2])
    cert, key = pki.nodes[2]
    tls = ["--cluster-id", "c9", "--peer-cacert", pki.ca, "--peer-cert", cert, "--peer-key", key]
    o = options(*tls)
    assert o.peer_tls is not None and o.api_tls is not None and o.api_tls.node == o.peer_tls
    assert o.api_tls.anonymous_loopback is False
    http = node_options(build_parser().parse_args(
        [*BASE, "--network", "http", "--anonymous-loopback", *tls]))
    assert http.peer_tls is None and http.api_tls.anonymous_loopback is True
    # with TLS on the HTTP API, a public HTTP address is allowed; without, refused
    public = node_options(build_parser().parse_args(
        ["serve", "--id", "2", "--addr", "0.0.0.0:0", "--raft-addr", "0.0.0.0:0", *tls]))
    assert public.api_tls is not None
    plain = build_parser().parse_args(
        ["serve", "--id", "2", "--addr", "0.0.0.0:0", "--raft-addr", "127.0.0.1:0"])
    with pytest.raises(ConfigError, match="HTTP address"):
        node_options(plain)


def test_read_round_counters_in_metrics_and_prometheus():
    async def main():
        async with trio.open_nursery() as nursery:
            c = KVTestCluster(nursery)
            await c.form(3)
            await c.post(1, "/write", {"Set": {"key": "k", "value": "v"}})
            _, before = await c.get(1, "/metrics")
            for _ in range(5):
                assert await c.post(1, "/consistent_read", "k") == (200, {"Ok": "v"})
            _, after = await c.get(1, "/metrics")
            rounds = after["Ok"]["read_rounds"]
            assert rounds["reads"] - before["Ok"]["read_rounds"]["reads"] == 5
            assert rounds["rounds"] - before["Ok"]["read_rounds"]["rounds"] == 5  # one at a time
            text = (await c.http[1].get("/metrics/prometheus")).text
            assert f"fastraft_read_rounds_total {float(rounds['rounds'])}" in text
            assert f"fastraft_consistent_reads_total {float(rounds['reads'])}" in text
            await c.stop_all()

    run(main)
