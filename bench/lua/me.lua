-- GET /v1/me: the cheap authenticated request whose latency the login flood must not hurt.
local c = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
setup = c.setup
request = function()
  return wrk.format("GET", "/v1/me", { ["Authorization"] = "Bearer " .. c.token })
end
done = c.done
