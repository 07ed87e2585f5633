-- PATCH /v3/deals/bulk_delete of 100 ids (most of them already gone after a while: the
-- route's cost is the same lookup either way).
local seeded = tonumber(os.getenv("BENCH_SEEDED") or "10000")
-- wrk.format replaces wrk.headers (the -H key) with the headers it is given: add to them.
local headers = {}
init = function()
  for name, value in pairs(wrk.headers) do headers[name] = value end
  headers["Content-Type"] = "application/json"
end

request = function()
  local ids = {}
  for i = 1, 100 do
    ids[#ids + 1] = string.format('"seed-%06d"', math.random(0, seeded - 1))
  end
  return wrk.format("PATCH", "/v3/deals/bulk_delete", headers,
                    "[" .. table.concat(ids, ",") .. "]")
end
