#!/usr/bin/env bash
# What does moving a module out of the process cost? Serves the same read (GET /api/v1/inventory/{sku}) from
# the monolith, where inventory is an in-process call, and from a split deployment, where the gateway calls
# the inventory service over HTTP; a catalog read, local in both, is the control. Prints requests/s and
# latency for each and the ratios, measured side by side in one run.
#
#   tests/bench/split-overhead.sh            # 10 s per measurement, 32 connections
#   DURATION=30 CONNECTIONS=64 tests/bench/split-overhead.sh
#
# Needs wrk (apt-get install wrk) and builds the release binary. Loopback only; every process stops at exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION="${DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-32}"
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)"; exit 1; }
cargo build --release --quiet
BIN="$PWD/target/release/shop"
WORK="$(mktemp -d)"
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT

common=(SHOP_SERVICE_TOKEN=bench-service-token-0123456789abcdef SHOP_ADMIN_EMAIL=admin@bench.test SHOP_ADMIN_PASSWORD=bench-admin-password
        RUST_LOG=warn SHOP_WORKERS=1)
start() { # name port env...
  local name=$1 port=$2; shift 2
  mkdir -p "$WORK/$name"
  (cd "$WORK/$name" && exec env "${common[@]}" SHOP_HTTP_ADDR="127.0.0.1:$port" "$@" "$BIN" >"$WORK/$name.log" 2>&1) &
  PIDS+=($!)
  for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/health/live" >/dev/null 2>&1 && return; sleep 0.1; done
  echo "$name did not start"; cat "$WORK/$name.log"; exit 1
}
# The monolith also serves a bare actix-web /health/live (no middleware): one HTTP exchange, the yardstick of a hop.
start monolith 19101 SHOP_BENCH_BARE_ADDR=127.0.0.1:19104
start inventory 19103 SHOP_MODULES=inventory SHOP_IDENTITY_URL=http://127.0.0.1:19102 SHOP_ADMIN_EMAIL= SHOP_ADMIN_PASSWORD=
start gateway 19102 SHOP_MODULES=identity,catalog,notifications SHOP_INVENTORY_URL=http://127.0.0.1:19103

seed() { # base
  local token product
  token=$(curl -fsS -X POST "$1/api/v1/auth/token" -H 'content-type: application/json' \
    -d '{"email":"admin@bench.test","password":"bench-admin-password"}' | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
  curl -fsS -X PUT "$1/api/v1/inventory/BENCH-1" -H "authorization: Bearer $token" \
    -H 'content-type: application/json' -d '{"on_hand":100}' >/dev/null
  product=$(curl -fsS -X POST "$1/api/v1/products" -H "authorization: Bearer $token" -H 'content-type: application/json' \
    -d '{"sku":"BENCH-1","name":"Bench","price":{"amount_minor":100,"currency":"EUR"}}' | sed -E 's/.*"id":"([^"]+)".*/\1/')
  echo "$product"
}
MONO_PRODUCT=$(seed http://127.0.0.1:19101)
GATE_PRODUCT=$(seed http://127.0.0.1:19102)

ms() { # wrk latency (850.00us, 1.20ms, 2.00s) -> milliseconds
  awk '{ v=$1; if (v ~ /us$/) { sub(/us$/,"",v); v/=1000 } else if (v ~ /ms$/) { sub(/ms$/,"",v) } else if (v ~ /s$/) { sub(/s$/,"",v); v*=1000 } printf "%.3f", v }' <<<"$1"
}
measure() { # label url [connections] -> "rps p50-in-ms"
  local out rps p50 p99 conns="${3:-$CONNECTIONS}" threads=2
  [ "$conns" -lt 2 ] && threads=1
  out=$(wrk -t"$threads" -c"$conns" -d"${DURATION}s" --latency "$2")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  if grep -q "Non-2xx" <<<"$out"; then echo "$1: non-2xx answers"; echo "$out"; exit 1; fi
  printf '%-52s %10s req/s   p50 %8s   p99 %8s\n' "$1, c=$conns" "$rps" "$p50" "$p99" >&2
  echo "$rps $(ms "$p50")"
}

echo "wrk: ${DURATION}s, $CONNECTIONS connections (and 1), 2 threads; each server 1 worker; $(nproc) cores shared with wrk" >&2
read -r a a50 < <(measure "inventory read, monolith (in-process)" http://127.0.0.1:19101/api/v1/inventory/BENCH-1)
read -r b b50 < <(measure "inventory read, split (gateway -> service)" http://127.0.0.1:19102/api/v1/inventory/BENCH-1)
read -r c c50 < <(measure "catalog read, monolith (control)" "http://127.0.0.1:19101/api/v1/products/$MONO_PRODUCT")
read -r d d50 < <(measure "catalog read, gateway (control)" "http://127.0.0.1:19102/api/v1/products/$GATE_PRODUCT")
read -r _ e50 < <(measure "inventory read, monolith (in-process)" http://127.0.0.1:19101/api/v1/inventory/BENCH-1 1)
read -r _ f50 < <(measure "inventory read, split (gateway -> service)" http://127.0.0.1:19102/api/v1/inventory/BENCH-1 1)
read -r _ g50 < <(measure "bare actix-web /health/live (one HTTP exchange)" http://127.0.0.1:19104/health/live 1)
awk -v a="$a" -v b="$b" -v c="$c" -v d="$d" -v a50="$a50" -v b50="$b50" -v e50="$e50" -v f50="$f50" -v g50="$g50" 'BEGIN {
  printf "split/monolith throughput, inventory read: %.2f\n", b / a
  printf "gateway/monolith throughput, catalog read (control): %.2f\n", d / c
  printf "split/monolith p50 latency, inventory read, one connection: %.2f (goal <= 1.3)\n", f50 / e50
  printf "  the hop: %.0f us at p50; one exchange with a bare handler: %.0f us; the goal allows %.0f us\n", (f50 - e50) * 1000, g50 * 1000, e50 * 0.3 * 1000
  printf "split/monolith p50 latency, inventory read, %s connections: %.2f\n", '"$CONNECTIONS"', b50 / a50
}'
