-- wrk script: the same POST every time. Arguments: path, body file, then header lines "Name: value".
local path_, body_ = "/", ""
local headers_ = {}

init = function(args)
  path_ = args[1]
  local f = assert(io.open(args[2], "rb"))
  body_ = f:read("*a")
  f:close()
  for i = 3, #args do
    local name, value = args[i]:match("^([^:]+):%s*(.*)$")
    headers_[name] = value
  end
end

request = function()
  return wrk.format("POST", path_, headers_, body_)
end
