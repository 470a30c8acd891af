"""A target for the peers' HTTP load generator (loadgen.py of the etcd anchor harness) that
speaks fastraft's KV API: POST /write {"Set": ...}, POST /consistent_read "key", POST /read
"key"; answers in the {"Ok": ...} envelope. Loaded by loadgen as
``--target benchmarks/kv/fastraft_target.py:FastraftKV``; ``run_vs_etcd.py`` does that.

Leader discovery reads GET /metrics of the first endpoint that answers and follows
``current_leader`` to its HTTP address in the membership.
"""

import json
import urllib.request

from loadgen import Req, Target  # provided by the load generator that loads this file


class FastraftKV(Target):
    name = "fastraft-kv"
    read_modes = ("linearizable", "serializable")

    def write(self, key: bytes, value: bytes) -> Req:
        body = {"Set": {"key": key.decode(), "value": value.decode("latin-1")}}
        return Req("POST", "/write", json.dumps(body, separators=(",", ":")).encode())

    def read(self, key: bytes, mode: str) -> Req:
        path = "/consistent_read" if mode == "linearizable" else "/read"
        return Req("POST", path, json.dumps(key.decode()).encode())

    def ok(self, op: str, status: int, body: bytes) -> bool:
        return status == 200 and body.startswith(b'{"Ok"') and (op == "write" or body != b'{"Ok":null}')

    def _metrics(self, endpoint: str) -> dict:
        with urllib.request.urlopen(endpoint + "/metrics", timeout=2) as r:
            return json.loads(r.read())["Ok"]

    def leader(self, endpoints):
        for ep in endpoints:
            try:
                m = self._metrics(ep)
            except OSError:
                continue
            leader = m["current_leader"]
            if leader is not None:
                return "http://" + m["membership_config"]["membership"]["nodes"][str(leader)]["addr"]
        return None

    def status(self, endpoints):
        out = {}
        for ep in endpoints:
            try:
                m = self._metrics(ep)
                out[ep] = {"leader": m["state"] == "Leader", "term": m["current_term"],
                           "raft_index": m["last_log_index"]}
            except OSError as e:
                out[ep] = {"error": str(e)}
        return out
