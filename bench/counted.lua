-- wrk script: POST one pre-made form body per request to /oauth2/token, in order, from the file
-- named by the first argument (one body per line), and count the answers by their OAuth error
-- code ("tokens" for a 200), printed at the end as "counted <code>: <n>" for the runner.
local bodies = {}
local i = 0
local headers_ = { ["Content-Type"] = "application/x-www-form-urlencoded" }
local threads = {}
counts = {}

setup = function(thread)
  table.insert(threads, thread)
end

init = function(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
end

request = function()
  i = i + 1
  if i > #bodies then i = 1 end -- a second poll of a code is slow_down: counted, reported
  return wrk.format("POST", "/oauth2/token", headers_, bodies[i])
end

response = function(status, headers, body)
  local code = status == 200 and "tokens" or body:match('"error"%s*:%s*"([^"]+)"') or tostring(status)
  counts[code] = (counts[code] or 0) + 1
end

done = function(summary, latency, requests)
  for _, thread in ipairs(threads) do
    for code, n in pairs(thread:get("counts")) do
      io.write(string.format("counted %s: %d\n", code, n))
    end
  end
end
