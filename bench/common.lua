-- Shared by the wrk scripts of bench/run.sh: reading the seed files, giving
-- each wrk thread its own starting point, and one machine-readable result
-- line printed by done():
--   BENCH requests=… duration_s=… rps=… p50_us=… p99_us=… max_us=…
--         non2xx=… connect=… read=… write=… timeout=… [status counts]
local common = {}

function common.read_lines(path)
  local lines = {}
  local file = assert(io.open(path, "r"), "cannot open " .. tostring(path))
  for line in file:lines() do
    if line ~= "" then
      lines[#lines + 1] = line
    end
  end
  file:close()
  assert(#lines > 0, "no lines in " .. path)
  return lines
end

-- setup() and done() run in wrk's main Lua state; each thread has its own
-- state, where init(), request() and response() run. Threads are numbered in
-- setup() and read their number (global thread_id) in init().
local threads = {}
local next_id = 0

function common.setup(thread)
  thread:set("thread_id", next_id)
  next_id = next_id + 1
  threads[#threads + 1] = thread
end

function common.threads()
  return threads
end

-- Counters from each thread's response(), summed in done().
function common.sum(name)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + (tonumber(thread:get(name)) or 0)
  end
  return total
end

function common.report(summary, latency, extra)
  local seconds = summary.duration / 1e6
  local e = summary.errors
  local line = string.format(
    "BENCH requests=%d duration_s=%.3f rps=%.2f p50_us=%d p99_us=%d max_us=%d " ..
    "non2xx=%d connect=%d read=%d write=%d timeout=%d",
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50), latency:percentile(99), latency.max,
    e.status, e.connect, e.read, e.write, e.timeout)
  if extra then
    line = line .. " " .. extra
  end
  io.write(line .. "\n")
end

return common
