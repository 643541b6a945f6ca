-- wrk script: <method> <path template> with a DRF token, "{id}" in the path taken from a list of ids.
-- Arguments after "--": <token> <ids file, one id a line> <method> <path template> <wrk thread count>.
-- Prints one "BENCH_JSON {...}" line with totals, latency percentiles (µs) and status counts.

local threads = {}
local counter = 0
local headers = {}
local ids = {}
local method = "POST"
local template = "/"
local nthreads = 1
tid = 0
statuses = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  headers["Authorization"] = "Token " .. args[1]
  for line in io.lines(args[2]) do
    table.insert(ids, line)
  end
  method = args[3]
  template = args[4]
  nthreads = tonumber(args[5])
end

function request()
  -- Threads interleave over the ids, so no two requests of a run share an item until the list wraps.
  local id = ids[((counter * nthreads + tid) % #ids) + 1]
  counter = counter + 1
  local body = nil
  if method == "POST" then
    body = ""
  end
  return wrk.format(method, (string.gsub(template, "{id}", id)), headers, body)
end

function response(status, resp_headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      counts[tostring(status)] = (counts[tostring(status)] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(counts) do
    table.insert(parts, string.format('"%s": %d', status, n))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "p50_us": %.0f, "p90_us": %.0f, "p99_us": %.0f, ' ..
    '"max_us": %.0f, "errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, "statuses": {%s}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.timeout, table.concat(parts, ", ")
  ))
end
