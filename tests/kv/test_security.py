"""A KV node's security settings: ``fastraft-kv certs`` writes a usable PKI, ``serve`` refuses
addresses that nobody authenticates unless ``--insecure``, and a node whose Raft port is
flooded with idle connections under a low file limit keeps serving writes over HTTP."""

import os
import resource
import socket
import ssl
import stat
import sys

import pytest
import trio

from fastraft.errors import ConfigError
from fastraft.kv import Set
from fastraft.kv.cli import main as cli_main
from fastraft.kv.client import KVClient
from fastraft.kv.local_cluster import LocalCluster
from fastraft.kv.server import NodeOptions
from fastraft.net.tls import TlsConfig, peer_identity


def test_certs_command_writes_a_ca_nodes_and_clients(tmp_path, capsys):
    out = tmp_path / "pki"
    assert cli_main(["certs", "--out", str(out), "--cluster-id", "prod-1", "--nodes", "1", "2",
                     "--clients", "admin:admin", "app"]) == 0
    names = sorted(os.listdir(out))
    assert names == sorted(["ca.pem", "ca-key.pem", "node-1.pem", "node-1-key.pem", "node-2.pem",
                            "node-2-key.pem", "client-admin.pem", "client-admin-key.pem",
                            "client-app.pem", "client-app-key.pem"])
    assert stat.S_IMODE(os.stat(out / "node-1-key.pem").st_mode) == 0o600
    tls = TlsConfig("prod-1", 2, str(out / "ca.pem"), str(out / "node-2.pem"), str(out / "node-2-key.pem"))
    # the node certificate carries its identity as the URI fastraft reads
    decoded = ssl._ssl._test_decode_cert(str(out / "node-2.pem"))  # noqa: SLF001 - a test's look
    assert peer_identity(decoded) == ("prod-1", 2)
    subject = dict(x for rdn in ssl._ssl._test_decode_cert(str(out / "client-admin.pem"))["subject"]
                   for x in rdn)
    assert subject["organizationalUnitName"] == "admin"
    assert tls.server_context().verify_mode == ssl.CERT_REQUIRED
    assert cli_main(["certs", "--out", str(out), "--cluster-id", "bad id!", "--nodes", "1"]) == 2


def test_serve_refuses_unauthenticated_addresses_that_are_not_loopback(tmp_path, capsys):
    assert cli_main(["serve", "--id", "1", "--addr", "0.0.0.0:0", "--raft-addr", "127.0.0.1:0"]) == 1
    assert "--insecure" in capsys.readouterr().err
    assert cli_main(["serve", "--id", "1", "--addr", "127.0.0.1:0", "--raft-addr", "0.0.0.0:0"]) == 1
    err = capsys.readouterr().err
    assert "raft address 0.0.0.0:0" in err and "peer TLS" in err
    assert cli_main(["serve", "--id", "1", "--addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0",
                     "--cluster-id", "c"]) == 2  # TLS options come together
    base = dict(node_id=1, addr="127.0.0.1:0", raft_addr="10.1.2.3:0")
    with pytest.raises(ConfigError, match="no peer TLS"):
        NodeOptions(**base).check()
    NodeOptions(**base, insecure=True).check()
    NodeOptions(node_id=1, addr="[::1]:0", raft_addr="localhost:0").check()
    with pytest.raises(ConfigError, match="HTTP address"):
        NodeOptions(node_id=1, addr="example.com:80", raft_addr="127.0.0.1:0").check()


FD_LIMIT = 1024
IDLE_CONNECTIONS = 1100


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="ulimit and many sockets: Linux")
def test_a_flooded_raft_port_leaves_the_http_api_serving(tmp_path):
    """The attack: 1,100 idle connections to the Raft port of a node limited to 1,024 open
    files. Before, the node accepted them all, its HTTP server could not accept (0 of 4
    writes in 12 s) and it logged EMFILE thousands of times. Now the Raft listener takes at
    most a quarter of the limit and closes the rest at once: writes keep succeeding."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < IDLE_CONNECTIONS + 200:
        pytest.skip(f"this process may open only {hard} files")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, IDLE_CONNECTIONS + 200), hard))
    wrapper = tmp_path / "python-ulimited"
    wrapper.write_text(f"#!/bin/sh\nulimit -n {FD_LIMIT}\nexec {sys.executable} \"$@\"\n")
    wrapper.chmod(0o755)

    async def main():
        with trio.fail_after(120):
            async with LocalCluster(str(tmp_path), store="memory", python=str(wrapper),
                                    verbose=1) as cluster:
                node = await cluster.start(1)
                async with KVClient([node.addr], deadline_s=20) as client:
                    await client.init()
                    await client.write(Set("before", "1"))
                    host, port = node.raft_addr.rsplit(":", 1)
                    flood = []
                    try:
                        for _ in range(IDLE_CONNECTIONS):
                            s = socket.socket()
                            s.setblocking(False)
                            flood.append(s)
                            try:
                                s.connect((host, int(port)))
                            except BlockingIOError:
                                pass
                        await trio.sleep(1.0)  # let the node work through its backlog
                        for i in range(4):  # each on a new HTTP connection: accepts needed
                            with trio.fail_after(15):
                                async with KVClient([node.addr], deadline_s=10) as fresh:
                                    result = await fresh.write(Set(f"during-{i}", str(i)))
                            assert result.value == str(i)
                    finally:
                        for s in flood:
                            s.close()
                log = cluster.log_tail(1, 1 << 20)
                assert "connections open, the limit" in log  # the listener refused the excess
                assert log.count("cannot accept") <= 20  # at most one line a second

    try:
        trio.run(main)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
