-- wrk script: POST one pre-made body per request, in order, from the file named by the first
-- script argument (one body per line). Run with one wrk thread so the sequence is shared.
local bodies = {}
local i = 0
local path_ = "/oauth2/token"
local headers_ = { ["Content-Type"] = "application/x-www-form-urlencoded" }

init = function(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
  if args[2] then headers_["Authorization"] = args[2] end
end

request = function()
  i = i + 1
  if i > #bodies then i = 1 end -- reuse shows up as non-2xx responses, which the runner reports
  return wrk.format("POST", path_, headers_, bodies[i])
end
