-- Shared by the wrk scripts: settings from the environment, ids as the seed makes them, and a
-- done() that prints one JSON line (requests/s, latency percentiles, every kind of error).
local M = {}

M.token = os.getenv("BENCH_TOKEN") or ""
M.clinics = tonumber(os.getenv("BENCH_CLINICS") or "20")
M.per_clinic = tonumber(os.getenv("BENCH_PER_CLINIC") or "1")

-- Patient n of the seed is 00000000-0000-4000-8000-<n:012>; clinic 1 holds n = 1, 1+C, 1+2C, ...
function M.random_patient_of_clinic_1()
  local n = math.random(0, M.per_clinic - 1) * M.clinics + 1
  return string.format("00000000-0000-4000-8000-%012d", n)
end

function M.uuid4()
  return string.format("%04x%04x-%04x-4%03x-%04x-%04x%04x%04x",
    math.random(0, 0xffff), math.random(0, 0xffff), math.random(0, 0xffff),
    math.random(0, 0xfff), 0x8000 + math.random(0, 0x3fff),
    math.random(0, 0xffff), math.random(0, 0xffff), math.random(0, 0xffff))
end

local counter = 0
function M.setup(thread)
  counter = counter + 1
  thread:set("thread_no", counter)
end

function M.seed()
  math.randomseed(os.time() * 1000 + (thread_no or 0) * 7919)
end

function M.done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"rps":%.2f,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"mean_us":%.1f,"non2xx":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"timeouts":%d}\n',
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    e.status, e.connect, e.read, e.write, e.timeout))
end

return M
