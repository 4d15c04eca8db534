-- read: an authenticated GET of a random clinic-1 patient's timeline (default page: 50).
local c = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
setup = c.setup
init = function() c.seed() end
request = function()
  return wrk.format("GET", "/v1/patients/" .. c.random_patient_of_clinic_1() .. "/timeline",
    { ["Authorization"] = "Bearer " .. c.token })
end
done = c.done
