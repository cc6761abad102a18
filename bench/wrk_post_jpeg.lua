-- wrk script: POST one JPEG to the classify route.
--   wrk -s bench/wrk_post_jpeg.lua http://127.0.0.1:PORT/v2/models/NAME/classify -- IMAGE
local path
function init(args)
  path = args[1]
  local f = assert(io.open(path, "rb"))
  wrk.body = f:read("*a")
  f:close()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "image/jpeg"
end
function done(summary, latency, requests)
  io.write(string.format("{\"requests\":%d,\"errors_status\":%d,\"p50_ms\":%.2f,\"p99_ms\":%.2f,\"rps\":%.1f}\n",
    summary.requests, summary.errors.status, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, summary.requests / (summary.duration / 1e6)))
end
