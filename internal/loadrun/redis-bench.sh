#!/usr/bin/env bash
# redis-benchmark -P 16 against redis-server on loopback, without and with
# `podwire agent` capturing both (root). Prints requests/s per command, the
# ratio, and entries lost (redis-server's own call counts vs the agent's).
# Usage: [PIN=1] [AGENT_ARGS=...] internal/loadrun/redis-bench.sh [bin/podwire] [requests per test]
# PIN=1 runs redis-server and redis-benchmark on CPU 0 and the agent on CPU 1
# (a node where the agent has a core of its own); otherwise all share.
set -euo pipefail
bin=${1:-bin/podwire}
n=${2:-100000}
root=$(awk '$3=="cgroup2"{print $2; exit}' /proc/mounts)
cg="$root/podwire-redisbench-$$"
mkdir "$cg"
freeport() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
port=$(freeport)
api=$(freeport)
cleanup() { echo 1 > "$cg/cgroup.kill" 2>/dev/null || true; sleep 0.3; rmdir "$cg" 2>/dev/null || true; }
trap cleanup EXIT
app=() agentpin=()
if [[ ${PIN:-} == 1 ]]; then app=(taskset -c 0) agentpin=(taskset -c 1); fi
incg() { bash -c 'echo $$ > "$0/cgroup.procs"; shift; exec "$@"' "$cg" -- "${app[@]}" "$@"; }
incg redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no >/dev/null &
sleep 0.5
bench() { incg redis-benchmark -p "$port" -P 16 -t set,get,lpush,lrange -n "$n" -q 2>/dev/null | tr '\r' '\n' | grep -E '^[^:]+: [0-9.]+ requests per second' ; }
declare -A without with
incg redis-benchmark -p "$port" -P 16 -t set -n 20000 -q >/dev/null 2>&1 # warm-up
while IFS=: read -r name rest; do without[$name]=$(awk '{print $1}' <<<"$rest"); done < <(bench)
"${agentpin[@]}" "$bin" agent --listen 127.0.0.1:$api --cgroup-root "$cg" --node-name bench --log-level warn ${AGENT_ARGS:-} &
agent=$!
sleep 1
before=$(incg redis-cli -p "$port" info commandstats | grep -oE 'calls=[0-9]+' | cut -d= -f2 | paste -sd+ | bc)
while IFS=: read -r name rest; do with[$name]=$(awk '{print $1}' <<<"$rest"); done < <(bench)
after=$(incg redis-cli -p "$port" info commandstats | grep -oE 'calls=[0-9]+' | cut -d= -f2 | paste -sd+ | bc)
sleep 2
status=$("$bin" status --agent 127.0.0.1:$api -o json)
entries=$(python3 -c 'import json,sys; c=json.load(sys.stdin)["counters"]; print(int(c.get("redis_entries",0)))' <<<"$status")
drops=$(python3 -c 'import json,sys; c=json.load(sys.stdin)["counters"]; print("ringbuf_full %s, tcp gaps %s, redis orphans %s, incomplete %s" % (c.get("bpf_ringbuf_full",0), c.get("tcp_gaps",0), c.get("redis_orphans",0), c.get("redis_incomplete",0)))' <<<"$status")
kill $agent; wait $agent 2>/dev/null || true
echo "| test | without agent (req/s) | with agent (req/s) | ratio |"
echo "|---|---|---|---|"
for k in "${!without[@]}"; do
  printf '| %s | %s | %s | %.3f |\n' "$k" "${without[$k]}" "${with[$k]:-0}" "$(echo "${with[$k]:-0} / ${without[$k]}" | bc -l)"
done | sort
calls=$((after - before - 1)) # minus our INFO
echo "commands run while capturing: $calls; redis entries: $entries; lost: $((calls > entries ? calls - entries : 0))"
echo "agent counters: $drops"
