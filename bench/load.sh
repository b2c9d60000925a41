#!/usr/bin/env bash
# Load benchmark of recsvc (bounded, loopback only): a catalog of ITEMS
# generated items and USERS generated users with click histories in the real
# Redis at 127.0.0.1:6379 (under the key prefix bench:<pid>:, removed at the
# end), the Kafka-protocol cluster of bench/kafka in its own process (as a
# real broker would be) for impressions; then
#   1. wrk, closed loop, for each connection count of CONNS, DURATION each:
#      req/s, p50/p99/p99.9, CPU per request of recsvc, Redis and the
#      broker (utime+stime deltas from /proc over the run / requests), RSS,
#      Redis's socket reads per request (how many pipelines arrive apart),
#      and `uptime` (the machine is shared: the load says what else ran);
#   2. with RATE > 0, loadgen (vegeta), open loop at RATE req/s: latency at that rate.
# PROFILE=1 also takes a CPU profile of recsvc (pprof via -debug-addr) during
# the first wrk run and prints its top entries; OUT=dir keeps the profiles
# and logs. RECSVC=path benchmarks a prebuilt binary (e.g. an older commit's,
# for a before/after in the same session).
#
#   bash bench/load.sh                          # 100k items, 10k users, c=8 and c=32, 20s each
#   CONNS=32 DURATION=10s ITEMS=1000 bash bench/load.sh
#   PROFILE=1 OUT=/tmp/after bash bench/load.sh
#
# Redis is shared with whatever else uses it: its CPU per request is what
# the whole server spent during the run, divided by recsvc's requests.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in wrk redis-cli; do
  command -v "$tool" >/dev/null || { echo "load.sh: $tool is not installed (Debian: apt-get install -y ${tool/redis-cli/redis-tools})" >&2; exit 1; }
done
ITEMS=${ITEMS:-100000}
USERS=${USERS:-10000}
CONNS=${CONNS:-8 32}
THREADS=${THREADS:-2}
DURATION=${DURATION:-20s}
RATE=${RATE:-0}
PORT=${PORT:-18181}
REDIS=${REDIS:-127.0.0.1:6379}
PROFILE=${PROFILE:-0}
rhost=${REDIS%:*} rport=${REDIS#*:}
prefix="bench:$$:"
tmp=$(mktemp -d)
out=${OUT:-$tmp}
mkdir -p "$out"
if [ -n "${RECSVC:-}" ]; then
  cp "$RECSVC" "$tmp/recsvc"
else
  go build -o "$tmp/recsvc" ./cmd/recsvc
fi
go build -o "$tmp/loadgen" ./bench/loadgen
go build -o "$tmp/kafka" ./bench/kafka
cleanup() {
  [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  [ -n "${kpid:-}" ] && kill "$kpid" 2>/dev/null && wait "$kpid" 2>/dev/null || true
  redis-cli -h "$rhost" -p "$rport" --scan --pattern "${prefix}*" | xargs -r -n 500 redis-cli -h "$rhost" -p "$rport" unlink >/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
# -retain: the broker deletes records as a real broker's retention would,
# so its memory (and GC) does not grow with the run.
"$tmp/kafka" -for 30m -retain 30s >"$tmp/kafka.addr" &
kpid=$!
for _ in $(seq 1 50); do [ -s "$tmp/kafka.addr" ] && break; sleep 0.1; done
# recsvc serves real servers only with API keys: one key of scope
# recommend, unlimited (the limiter would otherwise be what is measured).
key="bench.$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
echo "bench recommend sha256:$(printf %s "$key" | sha256sum | cut -d' ' -f1)" >"$tmp/keys"
export NOVAREC_API_KEY=$key BENCH_KEY=$key
debug=()
[ "$PROFILE" = 1 ] && debug=(-debug-addr "127.0.0.1:$((PORT + 1))")
REDIS_ADDR=$REDIS KAFKA_BROKERS=$(head -1 "$tmp/kafka.addr") NOVAREC_PREFIX=$prefix NOVAREC_LOG_LEVEL=warn \
  "$tmp/recsvc" -addr "127.0.0.1:$PORT" -sample-items "$ITEMS" -sample-users "$USERS" -feature-updater=off -trainer=off \
  -api-keys "$tmp/keys" -rate-limits recommend=off "${debug[@]}" 2>"$out/recsvc.log" &
pid=$!
for _ in $(seq 1 600); do
  curl -fsS -o /dev/null "http://127.0.0.1:$PORT/readyz" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || { cat "$out/recsvc.log"; exit 1; }
  sleep 0.2
done
rpid=$(redis-cli -h "$rhost" -p "$rport" info server | tr -d '\r' | awk -F: '/^process_id:/ {print $2}')
hz=$(getconf CLK_TCK)
# cpu prints the CPU ticks (utime+stime) process $1 has used.
cpu() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# rstat prints Redis's counter $1 (INFO stats): total_reads_processed counts
# the reads of client sockets, one per pipeline (or batch of pipelines) that
# arrived together, so its delta per request shows how much reads are batched.
rstat() { redis-cli -h "$rhost" -p "$rport" info stats | tr -d '\r' | awk -F: -v k="$1" '$1 == k {print $2}'; }
# per prints the CPU per request in ms of $1 ticks over $2 requests.
per() { awk -v t="$1" -v n="$2" -v hz="$hz" 'BEGIN { if (n > 0) printf "%.3f", t / hz * 1000 / n; else print "-" }'; }
# secs is DURATION (20, 20s or 2m) in seconds, for the profile's length.
case $DURATION in
  *m) secs=$((${DURATION%m} * 60)) ;;
  *) secs=${DURATION%s} ;;
esac

echo "recsvc ready: $ITEMS items, $USERS users; warming up"
BENCH_USERS=$USERS wrk -t"$THREADS" -c8 -d5s -s bench/recommend.lua "http://127.0.0.1:$PORT" >/dev/null
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), shared; go $(go env GOVERSION); commit $(git rev-parse --short HEAD)${RECSVC:+ (recsvc: $RECSVC)}"
first=1
for c in $CONNS; do
  echo "uptime: $(uptime)"
  if [ "$PROFILE" = 1 ] && [ "$first" = 1 ]; then
    psecs=$((secs > 5 ? secs - 4 : secs))
    curl -fsS -o "$out/cpu-c$c.pprof" "http://127.0.0.1:$((PORT + 1))/debug/pprof/profile?seconds=$psecs" &
    ppid=$!
  fi
  r0=$(cpu "$pid") d0=$(cpu "$rpid") k0=$(cpu "$kpid") e0=$(rstat total_reads_processed)
  BENCH_USERS=$USERS wrk -t"$THREADS" -c"$c" -d"$DURATION" --latency -s bench/recommend.lua "http://127.0.0.1:$PORT" >"$out/wrk-c$c.out"
  r1=$(cpu "$pid") d1=$(cpu "$rpid") k1=$(cpu "$kpid") e1=$(rstat total_reads_processed)
  line=$(tail -1 "$out/wrk-c$c.out")
  n=$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' <<<"$line")
  rss=$(awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$pid/status")
  echo "wrk -t$THREADS -c$c -d$DURATION: $line"
  echo "  CPU per request (ms): recsvc $(per $((r1 - r0)) "$n") redis $(per $((d1 - d0)) "$n") broker $(per $((k1 - k0)) "$n"); recsvc RSS $rss MiB"
  echo "  Redis socket reads per request: $(awk -v e=$((e1 - e0)) -v n="$n" 'BEGIN { if (n > 0) printf "%.2f", e / n; else print "-" }')"
  if [ -n "${ppid:-}" ]; then
    wait "$ppid" || true
    ppid=
    echo "  CPU profile of recsvc at c=$c, top entries${OUT:+ (go tool pprof -top $out/cpu-c$c.pprof)}:"
    go tool pprof -top -nodecount=25 "$tmp/recsvc" "$out/cpu-c$c.pprof" 2>/dev/null | sed -n '4,32p' | sed 's/^/    /'
  fi
  first=0
done
if [ "$RATE" -gt 0 ]; then
  echo "loadgen -rate $RATE -duration $DURATION (open loop, POST /v1/recommend, k=10)"
  "$tmp/loadgen" -url "http://127.0.0.1:$PORT" -rate "$RATE" -duration "$DURATION" -users "$USERS"
fi
curl -s "http://127.0.0.1:$PORT/metrics" | grep -E '^novarec_events_(published|dropped)_total|^novarec_recommend_degraded_total|^novarec_redis_trips_total' || true
