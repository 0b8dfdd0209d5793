#!/usr/bin/env bash
# Runs the River vs Gantry comparison and the throughput-vs-depth chart and
# prints the results as markdown for BENCHMARKS.md.
#
#   bench/vsriver/run.sh                  full run (about 15-25 minutes on 2 cores,
#                                         and about 3 more for the SQLite scenarios)
#   QUICK=1 bench/vsriver/run.sh          a few minutes: smaller counts, 1 round
#   DATABASE_URL=postgres://... bench/vsriver/run.sh
set -euo pipefail
cd "$(dirname "$0")"
url=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
if [[ -n "${QUICK:-}" ]]; then
  args=(-rounds 1 -jobs 10000 -steady 5s -latency-jobs 100 -depth 100000 -depth-jobs 10000 -sqlite-jobs 5000)
  chart=(-rounds 1 -depths 0,10000,100000 -depth-jobs 10000)
else
  args=(-rounds 3 -jobs 50000 -steady 10s -latency-jobs 200 -depth 1000000 -depth-jobs 20000 -sqlite-jobs 20000)
  chart=(-rounds 1 -depths 0,10000,100000,1000000 -depth-jobs 20000)
fi
go build -o /tmp/vsriver .
json=$(/tmp/vsriver -database-url "$url" -json "${args[@]}" 2>/tmp/vsriver.log)
echo "$json" >/tmp/vsriver.json
echo "### Gantry vs River, $(date -u +%Y-%m-%d), $(nproc) cores, PostgreSQL $(psql "$url" -Atc 'show server_version' 2>/dev/null || echo '?'), SQLite through modernc.org/sqlite $(go list -m -f '{{.Version}}' modernc.org/sqlite) in ${TMPDIR:-/tmp}"
echo
echo '```sh'
echo "cd bench/vsriver && go run . ${args[*]}"
echo '```'
echo
echo "| scenario | River jobs/s | Gantry jobs/s | ratio | River p50 ms | Gantry p50 ms |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
echo "$json" | python3 -c '
import json, sys
f = lambda v, p: "–" if v is None else (("%%.%df" % p) % v)
for s in json.load(sys.stdin)["scenarios"]:
    print("| %s | %s | %s | %.2f | %s | %s |" % (s["name"], f(s["river_jobs_per_sec"], 0), f(s["gantry_jobs_per_sec"], 0), s["ratio"], f(s["river_p50_ms"], 2), f(s["gantry_p50_ms"], 2)))
for s in json.load(open("/tmp/vsriver.json"))["scenarios"]:
    if s.get("river_completion_p50_ms") is not None:
        print()
        print("%s: submit to completion stored, p50: River %.2f ms, Gantry %.2f ms" % (s["name"], s["river_completion_p50_ms"], s["gantry_completion_p50_ms"]))
'
echo
echo "Per round (stderr of the run):"
echo
echo '```'
cat /tmp/vsriver.log
echo '```'
echo
echo '```sh'
echo "cd bench/vsriver && go run . chart ${chart[*]}"
echo '```'
echo
echo '```'
/tmp/vsriver chart -database-url "$url" "${chart[@]}" -out throughput-vs-depth.svg 2>/dev/null
echo '```'
