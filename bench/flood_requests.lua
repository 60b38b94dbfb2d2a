-- wrk script of bench/flood.sh: a fixed mix of webhook requests, sent round-robin, with a count of the
-- answers by status. The mix (out of 1,000 requests, prepared once in init):
--   300 generic, valid, a tracked image          -> 202
--   200 generic, valid, an untracked image       -> 202 (the daemon ignores it)
--   150 distribution envelope, a tracked image   -> 202
--   100 distribution envelope, untracked image   -> 202
--    60 generic with a wrong token               -> 401
--    40 distribution with a wrong token          -> 401
--    49 generic without a credential             -> 401
--   100 generic, malformed JSON                  -> 400
--     1 generic, a body over 1 MiB               -> 413
-- Environment: FLOOD_HOOK_TOKEN, FLOOD_REGISTRY (host:port), FLOOD_TRACKED, FLOOD_UNTRACKED (counts of
-- images bench/repo-0001… and bench/untracked-0001…).

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

local function generic(token, image, tag)
  local headers = { ["Content-Type"] = "application/json" }
  if token then headers["Authorization"] = "Bearer " .. token end
  return wrk.format("POST", "/webhook/generic", headers,
    string.format('{"image":"%s","tag":"%s"}', image, tag))
end

local function distribution(token, registry, repository, tag)
  local headers = {
    ["Content-Type"] = "application/vnd.docker.distribution.events.v1+json",
    ["Authorization"] = "Bearer " .. token,
  }
  local body = string.format(
    '{"events":[{"id":"flood","timestamp":"2026-01-01T00:00:00Z","action":"push","target":' ..
    '{"mediaType":"application/vnd.oci.image.manifest.v1+json","repository":"%s","tag":"%s"},' ..
    '"request":{"host":"%s","method":"PUT"}}]}', repository, tag, registry)
  return wrk.format("POST", "/webhook/distribution", headers, body)
end

function init(args)
  local token = os.getenv("FLOOD_HOOK_TOKEN")
  local registry = os.getenv("FLOOD_REGISTRY")
  local tracked = tonumber(os.getenv("FLOOD_TRACKED"))
  local untracked = tonumber(os.getenv("FLOOD_UNTRACKED"))
  local function repo(i) return string.format("bench/repo-%04d", i % tracked + 1) end
  local function other(i) return string.format("bench/untracked-%04d", i % untracked + 1) end
  local mix = {}
  local function add(count, make)
    for i = 1, count do table.insert(mix, make(i)) end
  end
  -- tags the registry does not have: a hint names a tag, the daemon reads the real list
  add(300, function(i) return generic(token, registry .. "/" .. repo(i), "9.9." .. i) end)
  add(200, function(i) return generic(token, registry .. "/" .. other(i), "1.0." .. i) end)
  add(150, function(i) return distribution(token, registry, repo(i), "9.9." .. i) end)
  add(100, function(i) return distribution(token, registry, other(i), "1.0." .. i) end)
  add(60, function(i) return generic("wrong-token-" .. i, registry .. "/" .. repo(i), "1.0.0") end)
  add(40, function(i) return distribution("wrong-token-" .. i, registry, repo(i), "1.0.0") end)
  add(49, function(i) return generic(nil, registry .. "/" .. repo(i), "1.0.0") end)
  add(100, function(i)
    return wrk.format("POST", "/webhook/generic",
      { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token },
      '{"image": "' .. registry .. '/' .. repo(i) .. '", "tag": ')
  end)
  add(1, function(i)
    return wrk.format("POST", "/webhook/generic",
      { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token },
      string.rep(" ", 1024 * 1024 + 1))
  end)
  -- every thread walks the same mix from its own offset
  requests = {}
  local n = #mix
  local offset = (id * 397) % n + 1
  for i = 1, n do requests[i] = mix[(i + offset - 2) % n + 1] end
  position = 0
  counts = {}
end

function request()
  position = position % #requests + 1
  return requests[position]
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    local counted = thread:get("counts")
    for status, count in pairs(counted) do
      total[status] = (total[status] or 0) + count
    end
  end
  local statuses = {}
  for status in pairs(total) do table.insert(statuses, status) end
  table.sort(statuses)
  io.write("status codes:")
  for _, status in ipairs(statuses) do io.write(string.format(" %d=%d", status, total[status])) end
  io.write("\n")
  io.write(string.format("latency percentiles (us): p50=%d p90=%d p99=%d p99.9=%d max=%d\n",
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max))
  io.write(string.format("errors: connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.status,
    summary.errors.timeout))
end
