-- wrk script: POST /v1/recommend for random users of the generated
-- population (user-0 .. user-N-1), one session per user, k=10.
local users = tonumber(os.getenv("BENCH_USERS") or "10000")
local run = os.time()
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
-- BENCH_KEY: an API key of scope recommend (bench/load.sh makes one).
if os.getenv("BENCH_KEY") then
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY")
end

function request()
  local u = math.random(0, users - 1)
  local body = string.format('{"user_id":"user-%d","session_id":"bench-%d-%d","k":10}', u, run, u)
  return wrk.format(nil, "/v1/recommend", nil, body)
end

function done(summary, latency, requests)
  io.write(string.format("requests=%d errors(status)=%d errors(socket)=%d rps=%.0f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f p99.9_ms=%.2f max_ms=%.2f\n",
    summary.requests, summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency:percentile(99.9) / 1000, latency.max / 1000))
end
