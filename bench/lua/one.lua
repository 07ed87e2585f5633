-- GET /v3/deals/{id} at random seeded ids.
local seeded = tonumber(os.getenv("BENCH_SEEDED") or "10000")
request = function()
  return wrk.format("GET", string.format("/v3/deals/seed-%06d", math.random(0, seeded - 1)))
end
