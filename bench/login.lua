-- wrk script: POST /login with one pre-made sign-in form per request (file = first argument),
-- as the browser whose CSRF cookie is the second argument ("cognate_csrf=...").
local bodies = {}
local i = 0
local headers_ = { ["Content-Type"] = "application/x-www-form-urlencoded" }

init = function(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
  headers_["Cookie"] = args[2]
end

request = function()
  i = i + 1
  if i > #bodies then i = 1 end -- a reused flow answers 400, which the runner reports
  return wrk.format("POST", "/login", headers_, bodies[i])
end
