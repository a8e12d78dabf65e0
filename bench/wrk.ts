/**
 * wrk's Lua script for the benchmarks: GET the paths listed in $WRK_PATHS in turn, with
 * $WRK_AUTH as the Authorization header when set; `done` is the Lua function that prints the
 * run's RESULT line (each bench reads its own fields).
 */
export function wrkScript(done: string): string {
  return `
local paths = {}
for line in io.lines(os.getenv("WRK_PATHS")) do paths[#paths + 1] = line end
local auth = os.getenv("WRK_AUTH")
local i = 0
request = function()
  i = i + 1
  local headers = {}
  if auth and auth ~= "" then headers["Authorization"] = auth end
  return wrk.format("GET", paths[(i % #paths) + 1], headers)
end
${done}
`;
}
