#!/usr/bin/env bash
# The guide's test-cluster.sh for fastraft: three `fastraft-kv serve` processes on 127.0.0.1
# with lmdb stores, driven with curl so every request and answer is plain HTTP to read.
#
#   init node 1, add 2 and 3 as learners, change membership to [1, 2, 3], write, read on
#   every node; kill -9 the leader, see a new leader, write, restart the killed node and
#   read the new value on it; change membership to [3], write and read on node 3.
#
# Exits non-zero on any unexpected answer; stops its processes and removes its files on any
# exit. Uses `fastraft-kv` from PATH, else `$PYTHON -m fastraft.kv` (PYTHON defaults to
# python3). Ports: FASTRAFT_KV_PORT_BASE (default 21001: HTTP 21001-21003, raft 22001-22003).
set -euo pipefail

PY="${PYTHON:-python3}"
if command -v fastraft-kv >/dev/null 2>&1; then KV=(fastraft-kv); else KV=("$PY" -m fastraft.kv); fi
BASE="${FASTRAFT_KV_PORT_BASE:-21001}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/fastraft-test-cluster.XXXXXX")"
declare -A PIDS=()

cleanup() {
    local status=$?
    for id in "${!PIDS[@]}"; do kill -TERM "${PIDS[$id]}" 2>/dev/null || true; done
    for id in "${!PIDS[@]}"; do
        for _ in $(seq 1 50); do kill -0 "${PIDS[$id]}" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "${PIDS[$id]}" 2>/dev/null || true
    done
    if [[ $status -ne 0 ]]; then
        for f in "$WORK"/n*.log; do [[ -f "$f" ]] && { echo "--- $f"; tail -n 20 "$f"; }; done
        echo "FAILED (status $status)"
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

http_addr() { echo "127.0.0.1:$((BASE + $1 - 1))"; }
raft_addr() { echo "127.0.0.1:$((BASE + 1000 + $1 - 1))"; }

start_node() {  # start_node ID: serve, then wait (bounded) for its ready line
    local id=$1
    : > "$WORK/n$id.out"  # a restart must not see the previous ready line
    "${KV[@]}" serve --id "$id" --addr "$(http_addr "$id")" --raft-addr "$(raft_addr "$id")" \
        --store lmdb --data "$WORK/n$id" > "$WORK/n$id.out" 2>> "$WORK/n$id.log" &
    PIDS[$id]=$!
    for _ in $(seq 1 300); do
        [[ -s "$WORK/n$id.out" ]] && { echo "node $id up: $(cat "$WORK/n$id.out")"; return 0; }
        kill -0 "${PIDS[$id]}" 2>/dev/null || { echo "node $id exited"; return 1; }
        sleep 0.1
    done
    echo "node $id did not start in 30 s"; return 1
}

rpc() {  # rpc METHOD NODE PATH [BODY]: print the exchange, leave the answer in $ANSWER
    local method=$1 node=$2 path=$3 body=${4:-}
    echo "--- $method $(http_addr "$node")$path ${body}"
    if [[ -n "$body" ]]; then
        ANSWER=$(curl -sS --max-time 130 -X "$method" -H 'Content-Type: application/json' \
            -d "$body" "http://$(http_addr "$node")$path")
    else
        ANSWER=$(curl -sS --max-time 130 -X "$method" "http://$(http_addr "$node")$path")
    fi
    echo "<<< $ANSWER"
}

expect() {  # expect PYTHON_EXPR: the expression over the JSON answer `a` must be true
    "$PY" -c 'import json, sys; a = json.loads(sys.argv[2]); sys.exit(0 if eval(sys.argv[1]) else 1)' \
        "$1" "$ANSWER" || { echo "unexpected answer: wanted $1"; exit 1; }
}

leader_of() {  # leader_of NODE...: wait (bounded) until one of the nodes knows a leader; print it
    for _ in $(seq 1 150); do
        for n in "$@"; do
            local m
            m=$(curl -sS --max-time 2 "http://$(http_addr "$n")/metrics" 2>/dev/null) || continue
            local l
            l=$("$PY" -c 'import json, sys; print(json.loads(sys.argv[1])["Ok"]["current_leader"] or "")' "$m")
            if [[ -n "$l" && " $* " == *" $l "* ]]; then echo "$l"; return 0; fi
        done
        sleep 0.1
    done
    echo "no leader among $* within 15 s" >&2; return 1
}

read_until() {  # read_until NODE KEY VALUE: local reads until the node applied VALUE (bounded)
    for _ in $(seq 1 100); do
        rpc POST "$1" /read "\"$2\"" >/dev/null
        [[ "$ANSWER" == "{\"Ok\":\"$3\"}" ]] && { echo "node $1 reads $2 = $3"; return 0; }
        sleep 0.1
    done
    echo "node $1 never read $2 = $3 (last answer $ANSWER)"; return 1
}

echo "=== start three uninitialized nodes"
for id in 1 2 3; do start_node "$id"; done

echo "=== initialize node 1 alone, add 2 and 3 as learners, make all three voters"
rpc POST 1 /init '[]';                                       expect 'a == {"Ok": None}'
leader_of 1 >/dev/null
rpc POST 1 /add-learner "[2, \"$(http_addr 2)\"]";           expect 'a["Ok"]["membership"]["membership"]["learners"] == [2]'
rpc POST 1 /add-learner "[3, \"$(http_addr 3)\"]";           expect 'a["Ok"]["membership"]["membership"]["learners"] == [2, 3]'
rpc POST 1 /change-membership '[1, 2, 3]';                   expect 'a["Ok"]["membership"]["membership"]["configs"] == [[1, 2, 3]]'
rpc GET 1 /metrics;                                          expect 'a["Ok"]["state"] == "Leader"'

echo "=== write on the leader, read on every node"
rpc POST 1 /write '{"Set": {"key": "foo", "value": "bar"}}'; expect 'a["Ok"]["data"] == {"value": "bar"}'
for id in 1 2 3; do read_until "$id" foo bar; done
rpc POST 2 /write '{"Set": {"key": "foo", "value": "x"}}';   expect 'a["Err"]["APIError"]["ForwardToLeader"]["leader_id"] == 1'
rpc POST 1 /consistent_read '"foo"';                         expect 'a == {"Ok": "bar"}'
rpc POST 1 /write 'not json';                                expect '"BadRequest" in a["Err"]'

echo "=== kill -9 the leader (node 1); a new leader takes over"
kill -KILL "${PIDS[1]}"; wait "${PIDS[1]}" 2>/dev/null || true; unset 'PIDS[1]'
NEW=$(leader_of 2 3); echo "new leader: node $NEW"
rpc POST "$NEW" /write '{"Set": {"key": "foo", "value": "after-kill"}}'; expect 'a["Ok"]["data"] == {"value": "after-kill"}'
rpc POST "$NEW" /consistent_read '"foo"';                    expect 'a == {"Ok": "after-kill"}'

echo "=== restart node 1 on its data; it catches up"
start_node 1
read_until 1 foo after-kill
rpc GET 1 /metrics;                                          expect 'a["Ok"]["current_leader"] == '"$NEW"

echo "=== change membership to [3]; write and read on node 3"
LEADER=$(leader_of 1 2 3)
rpc POST "$LEADER" /change-membership '[3]';                 expect 'a["Ok"]["membership"]["membership"]["configs"] == [[3]]'
[[ "$(leader_of 3)" == 3 ]] || { echo "node 3 does not lead"; exit 1; }
rpc POST 3 /write '{"Set": {"key": "foo", "value": "zoo"}}'; expect 'a["Ok"]["data"] == {"value": "zoo"}'
rpc POST 3 /read '"foo"';                                    expect 'a == {"Ok": "zoo"}'
rpc POST 3 /consistent_read '"foo"';                         expect 'a == {"Ok": "zoo"}'
rpc GET 3 /metrics;                                          expect 'a["Ok"]["membership_config"]["membership"]["configs"] == [[3]]'

echo "=== all good"
