#!/usr/bin/env bash
# Can a sign-in flood starve the shop? Measures product reads (GET /api/v1/products/{id}, random ids) alone,
# then the same reads while 64 connections hammer POST /api/v1/auth/token with a valid account (per-client rate
# limit off: a botnet has many addresses; real Argon2id cost), side by side in one run, and the server's peak
# and settled RSS. Prints the figures and the ratio (target: reads under the flood >= 0.7x, peak RSS < 300 MB).
#
#   tests/bench/sign-in-flood.sh                    # SQLite, 10 s per measurement
#   DURATION=20 tests/bench/sign-in-flood.sh
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/shop_bench tests/bench/sign-in-flood.sh   # (created, dropped)
#   FLOOD=0 tests/bench/sign-in-flood.sh            # the product read alone
#
# Needs wrk (apt-get install wrk); builds the release binary. Loopback only; every process stops at exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION="${DURATION:-10}"
READERS="${READERS:-32}"
FLOOD="${FLOOD:-64}"
PORT="${PORT:-19201}"
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)"; exit 1; }
cargo build --release --quiet
BIN="$PWD/target/release/shop"
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${DATABASE_URL:-}" ]; then psql "${DATABASE_URL%/*}/postgres" -qc "DROP DATABASE IF EXISTS ${DATABASE_URL##*/} WITH (FORCE)" >/dev/null 2>&1 || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
if [ -n "${DATABASE_URL:-}" ]; then
  psql "${DATABASE_URL%/*}/postgres" -qc "DROP DATABASE IF EXISTS ${DATABASE_URL##*/} WITH (FORCE)" >/dev/null 2>&1
  psql "${DATABASE_URL%/*}/postgres" -qc "CREATE DATABASE ${DATABASE_URL##*/}" >/dev/null
  export SHOP_DATABASE_URL="$DATABASE_URL"
fi

BASE="http://127.0.0.1:$PORT"
(cd "$WORK" && exec env RUST_LOG=warn SHOP_HTTP_ADDR="127.0.0.1:$PORT" SHOP_RATE_LIMIT_PER_CLIENT=0 \
  SHOP_ADMIN_EMAIL=admin@bench.test SHOP_ADMIN_PASSWORD=bench-admin-password \
  SHOP_LOGIN_MAX_FAILURES_PER_ACCOUNT=1000000 SHOP_LOGIN_MAX_FAILURES_PER_CLIENT=1000000 \
  "$BIN" >"$WORK/server.log" 2>&1) &
PIDS+=($!)
SERVER_PID=$!
for _ in $(seq 1 100); do curl -fsS "$BASE/health/ready" >/dev/null 2>&1 && break; sleep 0.1; done

TOKEN=$(curl -fsS -X POST "$BASE/api/v1/auth/token" -H 'content-type: application/json' \
  -d '{"email":"admin@bench.test","password":"bench-admin-password"}' | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
: >"$WORK/ids"
for i in $(seq 1 200); do
  curl -fsS -X POST "$BASE/api/v1/products" -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
    -d "{\"sku\":\"BENCH-$i\",\"name\":\"Bench product $i\",\"price\":{\"amount_minor\":$((100 + i)),\"currency\":\"EUR\"}}" |
    sed -E 's/.*"id":"([^"]+)".*/\1/' >>"$WORK/ids"
  echo >>"$WORK/ids"
done
cat >"$WORK/read.lua" <<LUA
local ids = {}
for line in io.lines("$WORK/ids") do if #line > 0 then ids[#ids + 1] = line end end
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/api/v1/products/" .. ids[math.random(#ids)])
end
LUA
cat >"$WORK/flood.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"email":"admin@bench.test","password":"bench-admin-password"}'
LUA

rss_mb() { awk -v k="$1" '$1 == k":" {printf "%.0f", $2 / 1024}' "/proc/$SERVER_PID/status"; }
reads() { # -> "rps p50 p99"
  local out
  out=$(wrk -t1 -c"$READERS" -d"${DURATION}s" --latency -s "$WORK/read.lua" "$BASE")
  if grep -q "Non-2xx" <<<"$out"; then echo "reads got non-2xx answers" >&2; echo "$out" >&2; exit 1; fi
  echo "$(awk '/Requests\/sec/ {print $2}' <<<"$out") $(awk '$1=="50%" {print $2}' <<<"$out") $(awk '$1=="99%" {print $2}' <<<"$out")"
}

rss_after_seeding=$(rss_mb VmRSS)
read -r alone_rps alone_p50 alone_p99 <<<"$(reads)"
rss_after_reads=$(rss_mb VmHWM)
DB_KIND=${DATABASE_URL:+postgres}
DB_KIND=${DB_KIND:-sqlite}
if [ "$FLOOD" = 0 ]; then # reads only: a quick baseline of the product read
  printf '%-42s %10s req/s   p50 %8s   p99 %8s   (%s)\n' "product reads (c=$READERS)" "$alone_rps" "$alone_p50" "$alone_p99" "$DB_KIND"
  exit 0
fi
wrk -t1 -c"$FLOOD" -d"$((DURATION + 4))s" -s "$WORK/flood.lua" "$BASE/api/v1/auth/token" >"$WORK/flood.out" 2>&1 &
FLOOD_PID=$!
sleep 2
read -r loaded_rps loaded_p50 loaded_p99 <<<"$(reads)"
wait "$FLOOD_PID"
peak=$(rss_mb VmHWM)
sleep 5
settled=$(rss_mb VmRSS)
flood_rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/flood.out")
flood_total=$(awk '/requests in/ {print $1}' "$WORK/flood.out")
flood_non2xx=$(awk '/Non-2xx/ {print $5}' "$WORK/flood.out"); flood_non2xx=${flood_non2xx:-0}

echo "machine: $(nproc) cores; wrk and the server share them; database: $DB_KIND"
printf '%-42s %10s req/s   p50 %8s   p99 %8s\n' "product reads alone (c=$READERS)" "$alone_rps" "$alone_p50" "$alone_p99"
printf '%-42s %10s req/s   p50 %8s   p99 %8s\n' "product reads during sign-in flood" "$loaded_rps" "$loaded_p50" "$loaded_p99"
printf '%-42s %10s req/s   (%s requests, %s answered 503 busy / non-2xx)\n' "sign-in flood (c=$FLOOD)" "$flood_rps" "$flood_total" "$flood_non2xx"
printf 'server RSS: %s MB seeded, peak %s MB after reads alone, peak %s MB with the flood, %s MB 5 s after it\n' \
  "$rss_after_seeding" "$rss_after_reads" "$peak" "$settled"
awk -v a="$alone_rps" -v b="$loaded_rps" -v peak="$peak" 'BEGIN {
  r = b / a
  printf "reads under flood / alone: %.2f (target >= 0.70) %s\n", r, (r >= 0.7 ? "ok" : "MISSED")
  printf "peak RSS: %d MB (target < 300) %s\n", peak, (peak < 300 ? "ok" : "MISSED")
}'
