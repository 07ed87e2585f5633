-- POST /v3/deals with 100 deals a body: 50 updates of seeded ids, 50 new ids.
-- wrk.headers["Authorization"] is set on the command line (-H).
local seeded = tonumber(os.getenv("BENCH_SEEDED") or "10000")
local counter = 0
local thread_tag = tostring(math.random(1, 1e9))

local function deal(id)
  return string.format(
    '{"id":"%s","responsibleUserId":"rep-1","name":"Deal %s","uri":"https://crm.example.com/d/%s","contacts":["c-1","c-2"],"closed":false}',
    id, id, id)
end

-- wrk.format replaces wrk.headers (the -H key) with the headers it is given: add to them.
local headers = {}
init = function()
  for name, value in pairs(wrk.headers) do headers[name] = value end
  headers["Content-Type"] = "application/json"
end

request = function()
  counter = counter + 1
  local items = {}
  for i = 1, 50 do
    items[#items + 1] = deal(string.format("seed-%06d", math.random(0, seeded - 1)))
  end
  for i = 1, 50 do
    items[#items + 1] = deal(string.format("new-%s-%d-%d", thread_tag, counter, i))
  end
  return wrk.format("POST", "/v3/deals", headers,
                    "[" .. table.concat(items, ",") .. "]")
end
