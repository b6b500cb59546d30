-- wrk script: what a CI job does, as pairs. A token exchange (RFC 8693) with one pre-minted
-- subject token per request (file = first argument, one form body per line), then
-- GetCredentialsForIdentity with the ID token that exchange returned (identity ID = second
-- argument, login provider name = third). Each exchanged ID token is used once; the
-- credentials themselves are cached by the gateway. Counts are printed for the runner.
local bodies = {}
local i = 0
local tokens = {}
local identity, provider
local form = { ["Content-Type"] = "application/x-www-form-urlencoded" }
local amz = {
  ["Content-Type"] = "application/x-amz-json-1.1",
  ["X-Amz-Target"] = "AWSCognitoIdentityService.GetCredentialsForIdentity",
}
local threads = {}
counts = {}

setup = function(thread)
  table.insert(threads, thread)
end

init = function(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
  identity, provider = args[2], args[3]
end

request = function()
  local token = table.remove(tokens, 1)
  if token then
    local body = string.format('{"IdentityId":"%s","Logins":{"%s":"%s"}}', identity, provider, token)
    return wrk.format("POST", "/", amz, body)
  end
  i = i + 1
  if i > #bodies then i = 1 end -- a replayed subject token is refused: counted, reported
  return wrk.format("POST", "/oauth2/token", form, bodies[i])
end

response = function(status, headers, body)
  local token = status == 200 and body:match('"access_token"%s*:%s*"([^"]+)"')
  if token then
    tokens[#tokens + 1] = token
    counts.exchanged = (counts.exchanged or 0) + 1
  elseif status == 200 and body:find('"SessionToken"', 1, true) then
    counts.vended = (counts.vended or 0) + 1
  else
    counts.refused = (counts.refused or 0) + 1
  end
end

done = function(summary, latency, requests)
  for _, thread in ipairs(threads) do
    for code, n in pairs(thread:get("counts")) do
      io.write(string.format("counted %s: %d\n", code, n))
    end
  end
end
