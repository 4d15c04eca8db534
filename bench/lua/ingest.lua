-- ingest: an authenticated POST of a PHQ-9 to a random patient of clinic 1, with a fresh
-- client id per request (an idempotent create, never a replay). Item 9 is always 0, as in the
-- seed, so no suicidal-ideation flag is raised (pgbench/ingest.sql has no flag insert either).
local c = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
setup = c.setup
init = function() c.seed() end
request = function()
  local items = {}
  for i = 1, 8 do items[i] = math.random(0, 3) end
  items[9] = 0
  local body = string.format('{"id":"%s","instrument":"phq9","taken_at":"%s","items":[%s]}',
    c.uuid4(), os.date("!%Y-%m-%dT%H:%M:%SZ"), table.concat(items, ","))
  return wrk.format("POST", "/v1/patients/" .. c.random_patient_of_clinic_1() .. "/assessments",
    { ["Authorization"] = "Bearer " .. c.token, ["Content-Type"] = "application/json" }, body)
end
done = c.done
