#!/usr/bin/env bash
# How fast are orders placed, and what does it cost when inventory and payments run as their own services?
# Places orders (POST /api/v1/orders: catalog prices, stock held, wallet charged, stock committed, the
# confirmation event written) at 16 concurrent buyers against PostgreSQL with durable commits, first with
# every module in one process, then with inventory and payments each in its own process and database, and
# runs pgbench's TPC-B on the same PostgreSQL in the same sitting as the yardstick. Prints one table and
# the ratios: orders/s ÷ TPC-B tps (goal ≥ 0.15 in-process: an order is about five commits) and the p50
# added per remote hop (three hops per order: reserve, charge, commit; goal ≤ 1 ms).
#
#   tests/bench/checkout.sh                          # 15 s per measurement
#   DURATION=30 PG_URL=postgres://postgres@127.0.0.1:5432/postgres tests/bench/checkout.sh
#
# Needs wrk and pgbench (apt-get install wrk postgresql-client) and a PostgreSQL it may create databases
# in; builds the release binary. Loopback only; every process and database it made is removed at exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION="${DURATION:-15}"
CONNECTIONS=16
PG_URL="${PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
PG_BASE="${PG_URL%/*}"
for tool in wrk pgbench psql curl; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install wrk postgresql-client curl)"; exit 1; }
done
cargo build --release --quiet
BIN="$PWD/target/release/shop"
WORK="$(mktemp -d)"
PIDS=()
SUFFIX="$$"
cleanup() {
  kill "${PIDS[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  # By name, not by a list: `database` runs in a command substitution, a subshell whose additions are lost.
  for db in $(psql "$PG_URL" -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'shop\_bench\_%\_$SUFFIX'" 2>/dev/null || true); do
    psql "$PG_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

database() { # name -> URL of a fresh database
  local db="shop_bench_${1}_$SUFFIX"
  psql "$PG_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
  psql "$PG_URL" -qc "CREATE DATABASE $db" >/dev/null
  echo "$PG_BASE/$db?sslmode=disable"
}

common=(SHOP_SERVICE_TOKEN=bench-service-token-0123456789abcdef SHOP_ADMIN_EMAIL=admin@bench.test
        SHOP_ADMIN_PASSWORD=bench-admin-password RUST_LOG=warn SHOP_RATE_LIMIT_PER_CLIENT=0
        SHOP_DB_POOL_SIZE=16 SHOP_REMOTE_TIMEOUT_MS=10000)
start() { # name port env...
  local name=$1 port=$2; shift 2
  mkdir -p "$WORK/$name"
  (cd "$WORK/$name" && exec env "${common[@]}" SHOP_HTTP_ADDR="127.0.0.1:$port" "$@" "$BIN" >"$WORK/$name.log" 2>&1) &
  PIDS+=($!)
}
ready() { # port...
  for port in "$@"; do
    for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1 && continue 2; sleep 0.1; done
    echo "the server on $port did not become ready"; cat "$WORK"/*.log; exit 1
  done
}

# In-process: every module in one process and one database.
start monolith 19201 SHOP_DATABASE_URL="$(database mono)"
# Split: inventory and payments in their own processes and databases; the gateway keeps the rest.
start gateway 19202 SHOP_DATABASE_URL="$(database gateway)" SHOP_MODULES=identity,catalog,ordering,notifications \
  SHOP_INVENTORY_URL=http://127.0.0.1:19203 SHOP_PAYMENTS_URL=http://127.0.0.1:19204
start inventory 19203 SHOP_DATABASE_URL="$(database inventory)" SHOP_MODULES=inventory SHOP_IDENTITY_URL=http://127.0.0.1:19202
start payments 19204 SHOP_DATABASE_URL="$(database payments)" SHOP_MODULES=payments SHOP_IDENTITY_URL=http://127.0.0.1:19202
ready 19201 19202 19203 19204

json_field() { sed -E "s/.*\"$1\":\"([^\"]+)\".*/\1/"; }
# Seeds 20 products with plenty of stock and 64 buyers with plenty of credit; writes the wrk script.
seed() { # base script
  local base=$1 admin products=() tokens=() i
  admin=$(curl -fsS -X POST "$base/api/v1/auth/token" -H 'content-type: application/json' \
    -d '{"email":"admin@bench.test","password":"bench-admin-password"}' | json_field access_token)
  for i in $(seq 1 20); do
    products+=("$(curl -fsS -X POST "$base/api/v1/products" -H "authorization: Bearer $admin" \
      -H 'content-type: application/json' \
      -d "{\"sku\":\"BENCH-$i\",\"name\":\"Bench $i\",\"price\":{\"amount_minor\":$((100 + i)),\"currency\":\"EUR\"}}" |
      json_field id)")
    curl -fsS -X PUT "$base/api/v1/inventory/BENCH-$i" -H "authorization: Bearer $admin" \
      -H 'content-type: application/json' -d '{"on_hand":1000000000}' >/dev/null
  done
  for i in $(seq 1 64); do
    local user
    user=$(curl -fsS -X POST "$base/api/v1/users" -H 'content-type: application/json' \
      -d "{\"email\":\"buyer$i@bench.test\",\"password\":\"bench-password-1\",\"display_name\":\"Buyer $i\"}" | json_field id)
    curl -fsS -X POST "$base/api/v1/wallets/$user/credits" -H "authorization: Bearer $admin" \
      -H 'content-type: application/json' -d '{"amount_minor":1000000000000,"reason":"bench"}' >/dev/null
    tokens+=("$(curl -fsS -X POST "$base/api/v1/auth/token" -H 'content-type: application/json' \
      -d "{\"email\":\"buyer$i@bench.test\",\"password\":\"bench-password-1\"}" | json_field access_token)")
  done
  {
    printf 'local tokens = {'; printf '"%s",' "${tokens[@]}"; printf '}\n'
    printf 'local products = {'; printf '"%s",' "${products[@]}"; printf '}\n'
    cat <<'LUA'
math.randomseed(os.time())
request = function()
  local token = tokens[math.random(#tokens)]
  local product = products[math.random(#products)]
  local body = '{"lines":[{"product_id":"' .. product .. '","quantity":1}]}'
  return wrk.format("POST", "/api/v1/orders",
    {["content-type"] = "application/json", ["authorization"] = "Bearer " .. token}, body)
end
LUA
  } >"$2"
}
seed http://127.0.0.1:19201 "$WORK/mono.lua"
seed http://127.0.0.1:19202 "$WORK/split.lua"

ms() { # wrk latency (850.00us, 1.20ms, 2.00s) -> milliseconds
  awk '{ v=$1; if (v ~ /us$/) { sub(/us$/,"",v); v/=1000 } else if (v ~ /ms$/) { sub(/ms$/,"",v) } else if (v ~ /s$/) { sub(/s$/,"",v); v*=1000 } printf "%.2f", v }' <<<"$1"
}
TICK=$(getconf CLK_TCK)
shop_cpu() { # seconds of CPU used so far by our server processes
  local total=0 pid
  for pid in "${PIDS[@]}"; do
    [ -r "/proc/$pid/stat" ] || continue
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  awk -v t="$total" -v k="$TICK" 'BEGIN {printf "%.2f", t / k}'
}
pg_cpu() { # seconds of CPU used so far by PostgreSQL's processes (the connections live through a run)
  local total=0 pid
  for pid in $(pgrep -x postgres); do
    [ -r "/proc/$pid/stat" ] && total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
  done
  awk -v t="$total" -v k="$TICK" 'BEGIN {printf "%.2f", t / k}'
}
xacts() { # transactions committed so far in the bench databases (autocommit statements count as one each)
  psql "$PG_URL" -Atc "SELECT COALESCE(SUM(xact_commit), 0) FROM pg_stat_database WHERE datname LIKE 'shop_bench_%_$SUFFIX'"
}
measure() { # label base script [connections] -> "rps p50 p99"
  local out rps p50 p99 shop0 pg0 shop1 pg1 orders x0 x1 conns="${4:-$CONNECTIONS}" threads=2
  [ "$conns" -lt 2 ] && threads=1
  shop0=$(shop_cpu); pg0=$(pg_cpu); x0=$(xacts)
  out=$(wrk -t"$threads" -c"$conns" -d"${DURATION}s" --latency -s "$3" "$2")
  shop1=$(shop_cpu); pg1=$(pg_cpu); x1=$(xacts)
  if grep -q "Non-2xx" <<<"$out"; then echo "$1: non-2xx answers"; echo "$out"; cat "$WORK"/*.log | tail -20; exit 1; fi
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(ms "$(awk '$1=="50%" {print $2}' <<<"$out")")
  p99=$(ms "$(awk '$1=="99%" {print $2}' <<<"$out")")
  orders=$(awk '/requests in/ {print $1}' <<<"$out")
  printf '%-46s %6.1f orders/s  p50 %6s ms  p99 %6s ms  per order: shop CPU %4.2f ms, PostgreSQL CPU %4.2f ms, %4.1f transactions\n' \
    "$1" "$rps" "$p50" "$p99" "$(awk -v a="$shop0" -v b="$shop1" -v n="$orders" 'BEGIN {print (b - a) * 1000 / n}')" \
    "$(awk -v a="$pg0" -v b="$pg1" -v n="$orders" 'BEGIN {print (b - a) * 1000 / n}')" \
    "$(awk -v a="$x0" -v b="$x1" -v n="$orders" 'BEGIN {print (b - a) / n}')" >&2
  echo "$rps $p50 $p99"
}

TPCB_DB="shop_bench_tpcb_$SUFFIX"
psql "$PG_URL" -qc "CREATE DATABASE $TPCB_DB" >/dev/null
pgbench -q -i -s 10 "$PG_BASE/$TPCB_DB" >/dev/null 2>&1
psql "$PG_URL" -qc "SELECT pg_stat_reset()" >/dev/null 2>&1 || true
echo "$(nproc) cores; PostgreSQL $(psql "$PG_URL" -Atc 'SHOW server_version'), synchronous_commit=$(psql "$PG_URL" -Atc 'SHOW synchronous_commit'), fsync=$(psql "$PG_URL" -Atc 'SHOW fsync'); wrk -t2 -c$CONNECTIONS -d${DURATION}s" >&2
# Without TLS, as the servers connect: libpq prefers TLS when the server offers it.
tpcb=$(pgbench -c "$CONNECTIONS" -j 2 -T "$DURATION" "$PG_BASE/$TPCB_DB?sslmode=disable" 2>/dev/null | awk '/^tps/ {print $3; exit}')
printf '%-52s %9.1f tps\n' "pgbench TPC-B (scale 10, 16 clients)" "$tpcb" >&2
read -r mono_rps mono_p50 mono_p99 <<<"$(measure "orders, in-process (one process, one database)" http://127.0.0.1:19201 "$WORK/mono.lua")"
read -r split_rps split_p50 split_p99 <<<"$(measure "orders, inventory + payments remote (3 hops)" http://127.0.0.1:19202 "$WORK/split.lua")"
# One buyer at a time: latency without queueing, so the difference is what the hops themselves cost.
read -r _ mono1_p50 _ <<<"$(measure "one buyer, in-process" http://127.0.0.1:19201 "$WORK/mono.lua" 1)"
read -r _ split1_p50 _ <<<"$(measure "one buyer, inventory + payments remote" http://127.0.0.1:19202 "$WORK/split.lua" 1)"
awk -v m="$mono_rps" -v s="$split_rps" -v t="$tpcb" -v mp="$mono_p50" -v sp="$split_p50" \
    -v m1="$mono1_p50" -v s1="$split1_p50" 'BEGIN {
  printf "in-process orders/s ÷ TPC-B tps:          %.3f (goal >= 0.15)\n", m / t
  printf "split orders/s ÷ TPC-B tps:               %.3f\n", s / t
  printf "p50 added per remote hop, 16 buyers:      %.2f ms (goal <= 1 ms; (split p50 - in-process p50) / 3)\n", (sp - mp) / 3
  printf "p50 added per remote hop, one buyer:      %.2f ms (the same without queueing)\n", (s1 - m1) / 3
}'
