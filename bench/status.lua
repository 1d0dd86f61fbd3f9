-- wrk script: GET <path> with `Authorization: Bearer <token>`, rotating over
-- the tokens in $BENCH_TOKENS_FILE (one per line, written by bench-seed).
-- Each thread starts at its own offset and walks the whole list, so every
-- token is used. The path comes from the URL given to wrk.
package.path = os.getenv("BENCH_DIR") .. "/?.lua;" .. package.path
local common = require("common")

local requests = {}
local index = 0

function setup(thread)
  common.setup(thread)
end

function init(args)
  local tokens = common.read_lines(os.getenv("BENCH_TOKENS_FILE"))
  for i, token in ipairs(tokens) do
    requests[i] = wrk.format("GET", wrk.path, { ["Authorization"] = "Bearer " .. token })
  end
  -- Spread the threads' starting points over the list.
  index = (thread_id * 7919) % #requests
end

function request()
  index = index % #requests + 1
  return requests[index]
end

function done(summary, latency, requests)
  common.report(summary, latency)
end
