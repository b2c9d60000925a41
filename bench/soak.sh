#!/usr/bin/env bash
# Soak test of recsvc (bounded, loopback only): sustained open-loop load at
# RATE req/s for DURATION against recsvc on the real Redis at REDIS (default
# 127.0.0.1:6379; started here without persistence when nothing answers and
# redis-server exists) under the key prefix soak:<pid>: (its keys are
# unlinked at the end; never a flush), with the Kafka-protocol cluster of
# bench/kafka in its own process for impressions. Every SAMPLE seconds it
# records recsvc's RSS, CPU time (utime+stime from /proc/PID/stat), heap and
# goroutines, and the CPU the rest of the machine used; at the end it prints
# throughput, p50/p99, errors, CPU per request and RSS first/2-minute/last/max,
# and exits 1 if any request failed or RSS did not stay flat
# (last > 1.2 × the value at 2 minutes).
#
#   bash bench/soak.sh                          # 2000 req/s for 10m, 100k items, 10k users
#   RATE=500 DURATION=3m ITEMS=10000 bash bench/soak.sh
#
# Ctrl-C stops the load early; the summary covers what finished.
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${RATE:-2000}
DURATION=${DURATION:-10m}
ITEMS=${ITEMS:-100000}
USERS=${USERS:-10000}
SAMPLE=${SAMPLE:-30}
# The in-memory broker deletes its records this often, as a real broker's
# retention would (kfake otherwise keeps all of them in RAM: 7 GiB after
# 1.8M impressions, whose GC then competes with recsvc for the 2 cores).
RETAIN=${RETAIN:-30s}
PORT=${PORT:-18182}
REDIS=${REDIS:-127.0.0.1:6379}
rhost=${REDIS%:*} rport=${REDIS#*:}

# seconds converts 90, 90s, 10m or 1h to seconds.
seconds() {
  case $1 in
    *h) echo $((${1%h} * 3600)) ;;
    *m) echo $((${1%m} * 60)) ;;
    *s) echo "${1%s}" ;;
    *) echo "$1" ;;
  esac
}
dur=$(seconds "$DURATION")
if ! [[ $dur =~ ^[0-9]+$ ]] || [ "$dur" -lt 1 ] || [ "$dur" -gt 3600 ]; then
  echo "soak: DURATION must be 1s..1h (e.g. 600, 90s, 10m), not $DURATION" >&2
  exit 2
fi
case $rhost in 127.0.0.1 | localhost) ;; *) echo "soak: REDIS must be a loopback address" >&2; exit 2 ;; esac

prefix="soak:$$:"
tmp=$(mktemp -d)
started_redis=
cleanup() {
  [ -n "${spid:-}" ] && kill "$spid" 2>/dev/null || true
  [ -n "${lpid:-}" ] && kill -INT "$lpid" 2>/dev/null && wait "$lpid" 2>/dev/null || true
  [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  [ -n "${kpid:-}" ] && kill "$kpid" 2>/dev/null && wait "$kpid" 2>/dev/null || true
  if [ -n "$started_redis" ]; then
    redis-cli -h "$rhost" -p "$rport" shutdown nosave >/dev/null 2>&1 || true
  else
    redis-cli -h "$rhost" -p "$rport" --scan --pattern "${prefix}*" | xargs -r -n 500 redis-cli -h "$rhost" -p "$rport" unlink >/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
# Ctrl-C during the load stops loadgen (which reports what finished) and
# goes on to the summary; at any other time it stops everything.
stop_load() { if [ -n "${lpid:-}" ]; then kill -INT "$lpid" 2>/dev/null || true; else exit 130; fi; }
trap stop_load INT TERM

if [ "$(redis-cli -h "$rhost" -p "$rport" ping 2>/dev/null)" != PONG ]; then
  command -v redis-server >/dev/null || { echo "soak: no Redis at $REDIS and no redis-server to start" >&2; exit 1; }
  redis-server --daemonize yes --bind "$rhost" --port "$rport" --save "" --appendonly no >/dev/null
  started_redis=1
  for _ in $(seq 1 50); do [ "$(redis-cli -h "$rhost" -p "$rport" ping 2>/dev/null)" = PONG ] && break; sleep 0.1; done
fi

go build -o "$tmp/recsvc" ./cmd/recsvc
go build -o "$tmp/loadgen" ./bench/loadgen
go build -o "$tmp/kafka" ./bench/kafka
setsid "$tmp/kafka" -for "$((dur + 900))s" -retain "$RETAIN" >"$tmp/kafka.addr" &
kpid=$!
for _ in $(seq 1 50); do [ -s "$tmp/kafka.addr" ] && break; sleep 0.1; done
# recsvc serves real servers only with API keys: one key of scope
# recommend, unlimited (the limiter would otherwise be what is measured).
key="bench.$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
echo "bench recommend sha256:$(printf %s "$key" | sha256sum | cut -d' ' -f1)" >"$tmp/keys"
export NOVAREC_API_KEY=$key BENCH_KEY=$key
REDIS_ADDR=$REDIS KAFKA_BROKERS=$(head -1 "$tmp/kafka.addr") NOVAREC_PREFIX=$prefix NOVAREC_LOG_LEVEL=warn \
  setsid "$tmp/recsvc" -addr "127.0.0.1:$PORT" -sample-items "$ITEMS" -sample-users "$USERS" -feature-updater=off -trainer=off \
  -api-keys "$tmp/keys" -rate-limits recommend=off 2>"$tmp/recsvc.log" &
pid=$!
for _ in $(seq 1 900); do
  curl -fsS -o /dev/null "http://127.0.0.1:$PORT/readyz" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || { cat "$tmp/recsvc.log"; exit 1; }
  sleep 0.2
done
curl -fsS -o /dev/null "http://127.0.0.1:$PORT/readyz" || { echo "soak: recsvc not ready" >&2; exit 1; }

hz=$(getconf CLK_TCK)
# sample prints: t(s) rss_kb cpu_ticks heap_bytes goroutines machine_busy_ticks ours_ticks kafka_rss_kb
sample() {
  local t=$1 rss cpu heap gor busy ours=0 p
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
  cpu=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  read -r heap gor < <(curl -s --max-time 5 "http://127.0.0.1:$PORT/metrics" |
    awk '/^go_memstats_heap_inuse_bytes /{h=$2} /^go_goroutines /{g=$2} END{printf "%.0f %d\n", h, g}')
  busy=$(awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat)
  for p in "$pid" "$kpid" ${lpid:-} $(pgrep -x redis-server || true); do
    if [ -r "/proc/$p/stat" ]; then ours=$((ours + $(awk '{print $14 + $15}' "/proc/$p/stat"))); fi
  done
  echo "$t $rss $cpu $heap $gor $busy $ours $(awk '/^VmRSS/ {print $2}' "/proc/$kpid/status")"
}

machine="$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); go $(go env GOVERSION)"
echo "soak: recsvc ready ($ITEMS items, $USERS users, Redis $REDIS prefix $prefix); $machine"
echo "soak: load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "soak: loadgen -rate $RATE -duration ${dur}s -report ${SAMPLE}s (POST /v1/recommend, k=10)"
printf '%6s %9s %9s %9s %6s\n' t_s rss_mib cpu_s heap_mib gorout
start=$(date +%s)
sample 0 >"$tmp/samples"
"$tmp/loadgen" -url "http://127.0.0.1:$PORT" -rate "$RATE" -duration "${dur}s" -users "$USERS" -report "${SAMPLE}s" >"$tmp/loadgen.out" &
lpid=$!
(
  i=1
  while kill -0 "$lpid" 2>/dev/null; do
    while [ "$(date +%s)" -lt $((start + i * SAMPLE)) ]; do
      kill -0 "$lpid" 2>/dev/null || break 2
      sleep 1
    done
    s=$(sample $((i * SAMPLE)))
    echo "$s" >>"$tmp/samples"
    awk '{printf "%6d %9.1f %9.1f %9.1f %6d\n", $1, $2/1024, $3/'"$hz"', $4/1048576, $5}' <<<"$s"
    i=$((i + 1))
  done
) &
spid=$!
while kill -0 "$lpid" 2>/dev/null; do wait "$lpid" || true; done
lpid=
wait "$spid" 2>/dev/null || true
spid=
end=$(date +%s)
s=$(sample "$((end - start))")
echo "$s" >>"$tmp/samples"
awk '{printf "%6d %9.1f %9.1f %9.1f %6d   (end of load)\n", $1, $2/1024, $3/'"$hz"', $4/1048576, $5}' <<<"$s"
echo "soak: load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

grep '^interval' "$tmp/loadgen.out" || true
total=$(grep '^rate=' "$tmp/loadgen.out" || true)
echo "$total"
grep -E '^(status|errors:)' "$tmp/loadgen.out" || true
[ -n "$total" ] || { echo "soak: loadgen reported nothing" >&2; cat "$tmp/loadgen.out"; exit 1; }
field() { { grep -o "\b$1=[^ ]*" <<<"$total" || true; } | head -1 | cut -d= -f2 | sed 's,/s$,,'; }
requests=$(field requests) errors=$(field errors)
curl -s "http://127.0.0.1:$PORT/metrics" >"$tmp/metrics" || true
grep -E '^novarec_events_(published|dropped)_total|^novarec_recommend_degraded_total' "$tmp/metrics" || true
degraded=$(awk '/^novarec_recommend_degraded_total / {printf "%.0f", $2}' "$tmp/metrics")
# Redis round trips of recommend (skipped while Redis is marked down) and how many missed the 100ms budget.
loads=$(awk '/^novarec_redis_duration_seconds_count\{op="load"\}/ {printf "%.0f", $2}' "$tmp/metrics")
inbudget=$(awk '/^novarec_redis_duration_seconds_bucket\{op="load",le="0.1"\}/ {printf "%.0f", $2}' "$tmp/metrics")

ref_t=$((dur >= 240 ? 120 : dur / 2))
awk -v hz="$hz" -v req="$requests" -v errs="$errors" -v wall="$((end - start))" -v ref_t="$ref_t" \
  -v tput="$(field throughput)" -v degraded="${degraded:-0}" -v loads="${loads:-0}" -v inbudget="${inbudget:-0}" -v p50="$(field p50_ms)" -v p99="$(field p99_ms)" -v ncpu="$(nproc)" '
  NR == 1 { first = $2; cpu0 = $3; busy0 = $6; ours0 = $7 }
  { last = $2; cpu1 = $3; busy1 = $6; ours1 = $7; if ($2 > max) max = $2; kafka = $8
    if (ref == "" && $1 >= ref_t) { ref = $2; reft = $1 } }
  END {
    cpu = (cpu1 - cpu0) / hz
    other = ((busy1 - busy0) - (ours1 - ours0)) / hz / wall
    printf "throughput: %.0f req/s (%d requests, %d errors)\n", tput, req, errs
    printf "latency: p50 %s ms, p99 %s ms\n", p50, p99
    printf "degraded answers (Redis failed or exceeded its 100ms budget): %d (%.2f%%)\n", degraded, (req > 0 ? 100 * degraded / req : 0)
    printf "Redis user-state reads: %d made, %d over 100ms; %d requests skipped Redis while it was marked down\n", loads, loads - inbudget, req - loads
    printf "CPU: %.1f s for %d requests = %.3f ms CPU/request (%.2f of %d cores on average)\n", cpu, req, (req > 0 ? 1000 * cpu / req : 0), cpu / wall, ncpu
    printf "RSS: first %.1f MiB, at %ds %.1f MiB, last %.1f MiB, max %.1f MiB\n", first / 1024, reft, ref / 1024, last / 1024, max / 1024
    flat = last <= 1.2 * ref
    printf "RSS flat (last <= 1.2 x the %ds value): %s\n", reft, flat ? "yes" : "NO"
    printf "other processes (not recsvc, loadgen, kafka, redis): %.2f cores on average; kafka RSS at the end %.0f MiB\n", other, kafka / 1024
    exit !(flat && errs == 0 && req > 0)
  }' "$tmp/samples" && echo "soak: PASSED" || { echo "soak: FAILED (errors or RSS growth)"; exit 1; }
