-- One signed webhook request, sent over and over by wrk.
--
-- benches/server.rs runs
--   wrk ... -s webhook.lua <url> -- <event> <delivery id> <signature> <body file>
-- where <signature> is the X-Hub-Signature-256 of the body file's exact
-- bytes, computed once by the harness: every request passes the check.

function init(args)
   local file = assert(io.open(args[4], "rb"))
   wrk.body = file:read("*a")
   file:close()
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
   wrk.headers["X-GitHub-Event"] = args[1]
   wrk.headers["X-GitHub-Delivery"] = args[2]
   wrk.headers["X-Hub-Signature-256"] = args[3]
end
