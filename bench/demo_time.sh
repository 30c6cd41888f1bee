#!/usr/bin/env bash
# Time the newcomer's path: `tuneloop demo` from its start to its served endpoint's /ready,
# then a chat completion, then Ctrl-C (the demo prints its stage summary). Run from the repo
# after `bash scripts/setup.sh`; TUNELOOP_CACHE_DIR=$(mktemp -d) times the model's conversion too.
#   bash bench/demo_time.sh [OUT]        (OUT: the demo's folder, default tuneloop-demo-timed)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-tuneloop-demo-timed}
if [[ -e $out ]]; then
  echo "demo_time: $out exists; name a new folder (a fresh run is what is timed)" >&2
  exit 1
fi
port=8000  # the demo serves on the default port
if curl -sf "http://127.0.0.1:$port/ready" >/dev/null 2>&1; then
  echo "demo_time: something already answers on :$port; stop it first" >&2
  exit 1
fi
start=$(date +%s)
echo "demo_time: started $(date +%T), load average $(cut -d' ' -f1-3 /proc/loadavg)"
PYTHONUNBUFFERED=1 .venv/bin/tuneloop demo --out "$out" >"$out.log" 2>&1 &
pid=$!
trap 'kill -INT $pid 2>/dev/null || true' EXIT
until curl -sf "http://127.0.0.1:$port/ready" >/dev/null 2>&1; do
  kill -0 $pid 2>/dev/null || { echo "demo_time: the demo ended before serving; see $out.log" >&2; exit 1; }
  sleep 2
done
echo "demo_time: /ready after $(($(date +%s) - start)) s, load average $(cut -d' ' -f1-3 /proc/loadavg)"
curl -sf "http://127.0.0.1:$port/v1/chat/completions" -H 'Content-Type: application/json' \
  -d '{"model": "support-triage", "messages": [{"role": "user", "content": "My parcel has not arrived after two weeks."}], "max_tokens": 64}'
echo
kill -INT $pid
wait $pid || true
trap - EXIT
sed -n '/== demo summary ==/,$p' "$out.log"
