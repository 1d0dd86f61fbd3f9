-- wrk script: POST /auth/login with JSON {"email","password"}, rotating over
-- the users in $BENCH_EMAILS_FILE with the password in $BENCH_PASSWORD_FILE.
-- Counts answers by kind: 200, 503 "too many password checks" (the bcrypt
-- queue is full), 429 (login throttle), other 503s, 401, anything else; and
-- how many refusals carried Retry-After.
package.path = os.getenv("BENCH_DIR") .. "/?.lua;" .. package.path
local common = require("common")

local requests = {}
local index = 0
-- Per-thread counters (globals, so that done() can read them with thread:get).
ok = 0            -- 200
refused = 0       -- 503/429 "too many password checks": the bcrypt queue is full
refused_retry = 0 -- of which carried Retry-After
throttled = 0     -- 429: the per-IP or per-account login throttle
throttled_retry = 0
unavailable = 0   -- other 503s (e.g. no database connection within the acquire timeout)
unauthorized = 0  -- 401: would mean the seeded password does not match
other = 0         -- anything else (e.g. 500)
other_codes = ""  -- "500,500,…" for the report

function setup(thread)
  common.setup(thread)
end

local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return string.format("\\u%04x", c:byte())
  end) .. '"'
end

function init(args)
  local emails = common.read_lines(os.getenv("BENCH_EMAILS_FILE"))
  local password = common.read_lines(os.getenv("BENCH_PASSWORD_FILE"))[1]
  local headers = { ["Content-Type"] = "application/json", ["User-Agent"] = "wrk-bench" }
  for i, email in ipairs(emails) do
    local body = '{"email":' .. json_string(email) .. ',"password":' .. json_string(password) .. '}'
    requests[i] = wrk.format("POST", wrk.path, headers, body)
  end
  index = (thread_id * 31) % #requests
end

function request()
  index = index % #requests + 1
  return requests[index]
end

function response(status, headers, body)
  if status == 200 then
    ok = ok + 1
  elseif status == 503 and body and body:find("password checks", 1, true) then
    refused = refused + 1
    if headers["Retry-After"] or headers["retry-after"] then
      refused_retry = refused_retry + 1
    end
  elseif status == 429 then
    throttled = throttled + 1
    if headers["Retry-After"] or headers["retry-after"] then
      throttled_retry = throttled_retry + 1
    end
  elseif status == 503 then
    unavailable = unavailable + 1
  elseif status == 401 then
    unauthorized = unauthorized + 1
  else
    other = other + 1
    if #other_codes < 200 then
      other_codes = other_codes .. (other_codes == "" and "" or ",") .. status
    end
  end
end

function done(summary, latency, requests)
  local codes = {}
  for _, thread in ipairs(common.threads()) do
    local c = thread:get("other_codes")
    if c and c ~= "" then
      codes[#codes + 1] = c
    end
  end
  local extra = string.format(
    "ok=%d refused=%d refused_retry_after=%d throttled=%d throttled_retry_after=%d " ..
    "unavailable=%d unauthorized=%d other=%d other_codes=%s",
    common.sum("ok"), common.sum("refused"), common.sum("refused_retry"),
    common.sum("throttled"), common.sum("throttled_retry"), common.sum("unavailable"),
    common.sum("unauthorized"), common.sum("other"), #codes > 0 and table.concat(codes, ",") or "-")
  common.report(summary, latency, extra)
end
