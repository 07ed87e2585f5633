-- GET /v3/deals?offset= at random offsets over the seeded deals.
local seeded = tonumber(os.getenv("BENCH_SEEDED") or "10000")
request = function()
  return wrk.format("GET", "/v3/deals?offset=" .. math.random(0, seeded - 1))
end
