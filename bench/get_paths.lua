-- wrk script: GET one pre-made path per request (file = first argument), as the browser whose
-- cookie header is the second argument ("cognate_csrf=...").
local paths = {}
local i = 0
local headers_ = {}

init = function(args)
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
  headers_["Cookie"] = args[2]
end

request = function()
  i = i + 1
  if i > #paths then i = 1 end -- a reused flow answers 400, which the runner reports
  return wrk.format("GET", paths[i], headers_)
end
