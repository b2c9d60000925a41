#!/usr/bin/env bash
# Load benchmark of recsvc (bounded, loopback only): a catalog of ITEMS
# generated items and USERS generated users with click histories in the real
# Redis at 127.0.0.1:6379 (under the key prefix bench:<pid>:, removed at the
# end), the Kafka-protocol cluster of bench/kafka in its own process (as a
# real broker would be) for impressions; then
#   1. wrk, closed loop, CONNS connections for DURATION: the saturation throughput;
#   2. loadgen (vegeta), open loop at RATE req/s for DURATION: latency at that rate.
#
#   bash bench/load.sh                 # 100k items, 10k users, 32 connections / 3000 req/s, 30s each
#   ITEMS=1000 DURATION=10s bash bench/load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ITEMS=${ITEMS:-100000}
USERS=${USERS:-10000}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
DURATION=${DURATION:-30s}
RATE=${RATE:-3000}
PORT=${PORT:-18181}
REDIS=${REDIS:-127.0.0.1:6379}
prefix="bench:$$:"
tmp=$(mktemp -d)
go build -o "$tmp/recsvc" ./cmd/recsvc
go build -o "$tmp/loadgen" ./bench/loadgen
go build -o "$tmp/kafka" ./bench/kafka
cleanup() {
  [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  [ -n "${kpid:-}" ] && kill "$kpid" 2>/dev/null && wait "$kpid" 2>/dev/null || true
  redis-cli -h "${REDIS%:*}" -p "${REDIS#*:}" --scan --pattern "${prefix}*" | xargs -r -n 500 redis-cli -h "${REDIS%:*}" -p "${REDIS#*:}" unlink >/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
"$tmp/kafka" -for 30m >"$tmp/kafka.addr" &
kpid=$!
for _ in $(seq 1 50); do [ -s "$tmp/kafka.addr" ] && break; sleep 0.1; done
# recsvc serves real servers only with API keys: one key of scope
# recommend, unlimited (the limiter would otherwise be what is measured).
key="bench.$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
echo "bench recommend sha256:$(printf %s "$key" | sha256sum | cut -d' ' -f1)" >"$tmp/keys"
export NOVAREC_API_KEY=$key BENCH_KEY=$key
REDIS_ADDR=$REDIS KAFKA_BROKERS=$(head -1 "$tmp/kafka.addr") NOVAREC_PREFIX=$prefix NOVAREC_LOG_LEVEL=warn \
  "$tmp/recsvc" -addr "127.0.0.1:$PORT" -sample-items "$ITEMS" -sample-users "$USERS" -feature-updater=off -trainer=off \
  -api-keys "$tmp/keys" -rate-limits recommend=off 2>"$tmp/recsvc.log" &
pid=$!
for _ in $(seq 1 600); do
  curl -fsS -o /dev/null "http://127.0.0.1:$PORT/readyz" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || { cat "$tmp/recsvc.log"; exit 1; }
  sleep 0.2
done
echo "recsvc ready: $ITEMS items, $USERS users; warming up"
BENCH_USERS=$USERS wrk -t"$THREADS" -c"$CONNS" -d5s -s bench/recommend.lua "http://127.0.0.1:$PORT" >/dev/null
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); go $(go env GOVERSION)"
echo "wrk -t$THREADS -c$CONNS -d$DURATION (POST /v1/recommend, k=10)"
BENCH_USERS=$USERS wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s bench/recommend.lua "http://127.0.0.1:$PORT" | tee "$tmp/wrk.out" | tail -1
echo "loadgen -rate $RATE -duration $DURATION (open loop, POST /v1/recommend, k=10)"
"$tmp/loadgen" -url "http://127.0.0.1:$PORT" -rate "$RATE" -duration "$DURATION" -users "$USERS"
rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
echo "recsvc RSS: $((rss / 1024)) MiB"
curl -s "http://127.0.0.1:$PORT/metrics" | grep -E '^novarec_events_(published|dropped)_total|^novarec_recommend_degraded_total' || true
