-- wrk script: POST one signed GitHub push payload with a unique
-- X-GitHub-Delivery per request. The signature covers the body only, so one
-- signature serves every request. Reads BENCH_BODY and BENCH_SIGNATURE, and
-- BENCH_PATH (default /webhooks/github) and BENCH_RUN (a tag that keeps the
-- delivery ids of separate runs apart).
local body_file = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
local body = body_file:read("*a")
body_file:close()
local signature = os.getenv("BENCH_SIGNATURE")
local path = os.getenv("BENCH_PATH") or "/webhooks/github"
local run = os.getenv("BENCH_RUN") or ""
local counter = 0
local prefix = ""

function setup(thread)
  thread:set("thread_id", tostring(math.random(1, 1e9)))
end

function init(args)
  prefix = "bench-" .. run .. "-" .. (thread_id or "0") .. "-" .. tostring(os.time()) .. "-"
end

function request()
  counter = counter + 1
  return wrk.format("POST", path, {
    ["Content-Type"] = "application/json",
    ["X-GitHub-Event"] = "push",
    ["X-GitHub-Delivery"] = prefix .. counter,
    ["X-Hub-Signature-256"] = signature,
  }, body)
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local failed = summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT requests=%d failed=%d seconds=%.2f rps=%.0f p50_ms=%.2f p99_ms=%.2f\n",
    summary.requests, failed, seconds, (summary.requests - failed) / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
