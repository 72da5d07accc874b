-- wrk script: GET /search with the queries of $QUERIES (one per line), in turn; every third
-- request also filters on negative sentiment.
local queries = {}
for line in io.lines(os.getenv("QUERIES")) do
  if #line > 0 then table.insert(queries, line) end
end
local i = 0
local function urlencode(s)
  return (s:gsub("[^%w%-_%.~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end
request = function()
  i = i + 1
  local q = queries[(i % #queries) + 1]
  local path = "/search?limit=20&q=" .. urlencode(q)
  if i % 3 == 0 then path = path .. "&sentiment=negative" end
  return wrk.format("GET", path)
end
local errors = 0
response = function(status, headers, body)
  if status ~= 200 then errors = errors + 1 end
end
