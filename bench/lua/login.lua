-- login flood: POST /v1/auth/login with the right password (each one verifies argon2id; a
-- wrong one would hit the throttle instead), cycling over the seeded flood-<i> accounts.
local c = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
local accounts = tonumber(os.getenv("BENCH_FLOOD_ACCOUNTS") or "50")
local password = os.getenv("BENCH_PASSWORD")
setup = c.setup
local i = 0
init = function() c.seed(); i = math.random(0, accounts - 1) end
request = function()
  i = i % accounts + 1
  local body = string.format('{"email":"flood-%d@bench.example","password":"%s"}', i, password)
  return wrk.format("POST", "/v1/auth/login", { ["Content-Type"] = "application/json" }, body)
end
done = c.done
