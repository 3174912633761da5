-- wrk script for tests/bench/overhead.py: POST an OpenAI chat body with a unique prompt per
-- request (so caches miss), print one machine-readable line. Env: KEY, MODEL, STREAM (0|1).
local key = os.getenv("KEY") or "sk-none"
local model = os.getenv("MODEL") or "gpt-4o-mini"
local stream = os.getenv("STREAM") == "1"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. key

local nthreads = 0
local nonce = tostring(os.time()) .. tostring(math.floor(os.clock() * 1e6))
function setup(thread)
  nthreads = nthreads + 1
  thread:set("tid", nthreads)
  thread:set("nonce", nonce)
end

function init(args) n = 0 end

function request()
  n = n + 1
  local s = stream and ',"stream":true' or ''
  return wrk.format(nil, nil, nil, '{"model":"' .. model .. '"' .. s ..
    ',"messages":[{"role":"user","content":"Say hello in one word. [' .. nonce .. '-' .. tid .. '-' .. n .. ']"}]}')
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("OVH rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f non2xx=%d requests=%d sockerr=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    e.status, summary.requests, e.connect + e.read + e.write + e.timeout))
end
