#!/usr/bin/env bash
# How fast are the reads users feel, next to what this box can do at all?
# Builds the binary, starts one server on PostgreSQL and one on SQLite (loopback, RUST_LOG=warn), seeds
# products and stock in bulk (10,000, then 1,000,000), and runs wrk on: a product by random id, the first
# page of the listing, a stock level by random SKU, searches (a word of one product; a colour, one product in
# 16; both mixed: "chair <word of one product>"), /health/live, and
# /health/live served by a bare actix-web app in the same process (SHOP_BENCH_BARE_ADDR). In the same
# sitting, `pgbench -S -M prepared -c 8 -j 2` over TCP without TLS is the ceiling of a one-row read on this
# PostgreSQL, and a plain actix-web + diesel server (tests/bench/plain-read) serves the same product read on
# the same database: the yardstick of what the framework and the driver cost before anything of shop's.
# pgbench also runs the same product read (random ids) on each dataset, to tell the database's own drop at a million
# products from shop's.
# It also measures cold start to ready and idle RSS. Prints one table and the ratios of docs/performance.md.
#
#   tests/bench/reads.sh                                  # about 15 minutes
#   DURATION=15 tests/bench/reads.sh                      # longer runs
#   SIZES=10000 BACKENDS=postgres tests/bench/reads.sh    # one dataset
#   QUICK=1 tests/bench/reads.sh                          # CI smoke: 1 s per run, 1,000 products, debug build
#
# Needs wrk, pgbench, psql, python3 and curl, and a PostgreSQL (PG_URL) it may create databases in.
# Everything it started or created is removed at exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ -n "${QUICK:-}" ]; then
  DURATION="${DURATION:-1}"; SIZES="${SIZES:-1000}"; PROFILE="${PROFILE:-debug}"
fi
DURATION="${DURATION:-8}"
SIZES="${SIZES:-10000 1000000}"
BACKENDS="${BACKENDS:-postgres sqlite}"
PROFILE="${PROFILE:-release}"
PG_URL="${PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
PG_BASE="${PG_URL%/*}"
for tool in wrk pgbench psql python3 curl; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install wrk postgresql-client python3 curl)"; exit 1; }
done
# The yardstick: a plain actix-web + diesel server's one-row read (tests/bench/plain-read), beside shop's.
PLAIN=(--quiet --manifest-path tests/bench/plain-read/Cargo.toml --target-dir "$PWD/target/plain-read")
if [ "$PROFILE" = release ]; then
  cargo build --release --quiet && cargo build --release "${PLAIN[@]}"
else
  cargo build --quiet && cargo build "${PLAIN[@]}"
fi
BIN="$PWD/target/$PROFILE/shop"
PLAIN_BIN="$PWD/target/plain-read/$PROFILE/plain-read"
WORK="$(mktemp -d)"
SERVER=""
SUFFIX="$$"
# Every step may fail (the server already gone, a database never made): cleanup must still reach the end.
PLAIN_PID=""
cleanup() {
  if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
  if [ -n "$PLAIN_PID" ]; then kill "$PLAIN_PID" 2>/dev/null || true; wait "$PLAIN_PID" 2>/dev/null || true; fi
  # By name, not by a list: `database` runs in a command substitution, a subshell whose additions are lost.
  for db in $(psql "$PG_URL" -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'shop\_bench\_%\_$SUFFIX'" 2>/dev/null || true); do
    psql "$PG_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

database() { # name -> URL of a fresh PostgreSQL database
  local db="shop_bench_${1}_$SUFFIX"
  psql "$PG_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
  psql "$PG_URL" -qc "CREATE DATABASE $db" >/dev/null
  echo "$PG_BASE/$db?sslmode=disable"
}

PORT=19301
BARE_PORT=19302
PLAIN_PORT=19303
env_common=(RUST_LOG=warn SHOP_HTTP_ADDR="127.0.0.1:$PORT" SHOP_BENCH_BARE_ADDR="127.0.0.1:$BARE_PORT"
            SHOP_RATE_LIMIT_PER_CLIENT=0 SHOP_SERVICE_TOKEN=bench-service-token-0123456789abcdef)
start() { # database-url
  mkdir -p "$WORK/data"
  (cd "$WORK" && exec env "${env_common[@]}" SHOP_DATA_DIR="$WORK/data" SHOP_DATABASE_URL="$1" "$BIN" >"$WORK/server.log" 2>&1) &
  SERVER=$!
  for _ in $(seq 1 300); do curl -fsS "http://127.0.0.1:$PORT/health/ready" >/dev/null 2>&1 && return; sleep 0.1; done
  echo "the server did not become ready"; cat "$WORK/server.log"; exit 1
}
stop() { kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; SERVER=""; }

# Cold start: exec to the first 200 of /health/ready, polled every millisecond; then the RSS after a
# second of idling. `$1` is the database URL (migrations already applied: a restart, not a first run);
# `$2` is MALLOC_ARENA_MAX ("" for glibc's default; the Dockerfile sets 1).
cold_start() {
  python3 - "$BIN" "$1" "$WORK/data" "$PORT" "$2" <<'PY'
import http.client, os, subprocess, sys, time
binary, url, data, port, arenas = sys.argv[1:6]
env = dict(os.environ, RUST_LOG="warn", SHOP_HTTP_ADDR=f"127.0.0.1:{port}", SHOP_DATA_DIR=data,
           SHOP_DATABASE_URL=url, SHOP_SERVICE_TOKEN="bench-service-token-0123456789abcdef")
env.pop("MALLOC_ARENA_MAX", None)
if arenas:
    env["MALLOC_ARENA_MAX"] = arenas
samples = []
for _ in range(5):
    started = time.perf_counter()
    proc = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ready = None
    while ready is None and time.perf_counter() - started < 10:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=1)
            conn.request("GET", "/health/ready")
            if conn.getresponse().status == 200:
                ready = time.perf_counter() - started
            conn.close()
        except OSError:
            time.sleep(0.001)
    time.sleep(1)
    rss = 0
    with open(f"/proc/{proc.pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
    proc.terminate()
    proc.wait()
    if ready is None:
        sys.exit("the server did not become ready")
    samples.append((ready * 1000, rss))
samples.sort()
ms, rss = samples[len(samples) // 2]
print(f"{ms:.1f} {rss:.1f}")
PY
}

# Bulk seed: products 00000000-0000-7000-8000-<n as 12 hex digits> with SKU-<n as 7 digits>, and stock for
# each. A name holds a colour (one product in 16) and a six-letter word computed from n, about one in 300
# million: a search for it matches one product at any size, as a search for a model name does. The rows get
# the words the catalog would cut (modules/catalog/src/words.rs: runs of letters and digits, lowercased, every
# suffix of the SKU's words) and the vocabulary their counts, as the catalog's own writes leave them.
NAMES="'red','blue','green','black','white','steel','oak','linen','wool','glass','stone','brass','cedar','silk','clay','iron'"
# The word of product n: h = n * 2654435761 mod 2^32, written as six base-26 letters (least significant first).
pg_word() { local out="" k; for k in 0 1 2 3 4 5; do out="$out || chr((97 + ((n::bigint * 2654435761) % 4294967296 / $((26 ** k))) % 26)::int)"; done; echo "''$out"; }
seed_postgres() { # url from to
  psql "${1%%\?*}" -q -v ON_ERROR_STOP=1 <<SQL
CREATE TEMP TABLE fresh AS
SELECT n, id, sku, name, description,
       array_to_string(ARRAY(SELECT DISTINCT w FROM unnest(title) AS w), ' ') AS title_words,
       array_to_string(ARRAY(SELECT DISTINCT w FROM unnest(title || ARRAY['a', 'sturdy', 'made', 'for', 'benchmarks', 'number', n::text]) AS w), ' ') AS all_words
FROM (SELECT n, id, sku, name, 'A sturdy chair made for benchmarks, number ' || n || '.' AS description,
             ARRAY['bench', colour, 'chair', word, 'sku', 'ku', 'u'] ||
               ARRAY(SELECT substr(lpad(n::text, 7, '0'), k) FROM generate_series(1, 7) AS k) AS title
      FROM (SELECT n, '00000000-0000-7000-8000-' || lpad(to_hex(n), 12, '0') AS id, 'SKU-' || lpad(n::text, 7, '0') AS sku,
                   (ARRAY[$NAMES])[1 + n % 16] AS colour, $(pg_word) AS word,
                   'Bench ' || (ARRAY[$NAMES])[1 + n % 16] || ' chair ' || ($(pg_word)) AS name
            FROM generate_series($2, $3) AS n) AS named) AS worded;
INSERT INTO catalog_products (id, sku, name, description, price_minor, currency, active, title_words, all_words, words_version, created_at, updated_at)
SELECT id, sku, name, description, 100 + n % 10000, 'EUR', true, title_words, all_words, 1, now(), now() FROM fresh;
INSERT INTO catalog_search_words (word, titles, products)
SELECT word, count(*) FILTER (WHERE ' ' || title_words || ' ' LIKE '% ' || word || ' %'), count(*)
FROM fresh, unnest(string_to_array(all_words, ' ')) AS word GROUP BY word
UNION ALL SELECT '', count(*), count(*) FROM fresh
ON CONFLICT (word) DO UPDATE SET titles = catalog_search_words.titles + excluded.titles,
                                 products = catalog_search_words.products + excluded.products;
INSERT INTO inventory_stock (sku, on_hand, reserved, updated_at)
SELECT 'SKU-' || lpad(n::text, 7, '0'), 1000, 0, now() FROM generate_series($2, $3) AS n;
VACUUM ANALYZE catalog_products;
VACUUM ANALYZE catalog_search_words;
VACUUM ANALYZE inventory_stock;
-- The bulk load's dirty pages are written now, not by a checkpoint in the middle of a measurement.
CHECKPOINT;
SQL
}
seed_sqlite() { # file from to
  python3 - "$1" "$2" "$3" "$NAMES" <<'PY'
import collections, re, sqlite3, sys
path, first, last, names = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
names = [n.strip("'") for n in names.split(",")]
def word(n):
    h, out = (n * 2654435761) % 4294967296, ""
    for k in range(6):
        out += chr(97 + (h // 26 ** k) % 26)
    return out
def words(text):
    return re.findall(r"[a-z0-9]+", text.lower())
counts = collections.defaultdict(lambda: [0, 0])
def rows():
    for n in range(first, last + 1):
        sku, name = f"SKU-{n:07d}", f"Bench {names[n % 16]} chair {word(n)}"
        description = f"A sturdy chair made for benchmarks, number {n}."
        title = set(words(name)) | {w[i:] for w in words(sku) for i in range(len(w))}
        every = title | set(words(description))
        for w in title:
            counts[w][0] += 1
        for w in every:
            counts[w][1] += 1
        yield (f"00000000-0000-7000-8000-{n:012x}", sku, name, description, 100 + n % 10000,
               " ".join(sorted(title)), " ".join(sorted(every)))
db = sqlite3.connect(path, timeout=30)
db.execute("BEGIN")
db.executemany("""INSERT INTO catalog_products (id, sku, name, description, price_minor, currency, active,
                  title_words, all_words, words_version, created_at, updated_at)
                  VALUES (?, ?, ?, ?, ?, 'EUR', 1, ?, ?, 1, datetime('now'), datetime('now'))""", rows())
counts[""] = [last - first + 1, last - first + 1]
db.executemany("""INSERT INTO catalog_search_words (word, titles, products) VALUES (?, ?, ?)
                  ON CONFLICT (word) DO UPDATE SET titles = titles + excluded.titles,
                                                   products = products + excluded.products""",
               ((w, t, p) for w, (t, p) in counts.items()))
db.executemany("INSERT INTO inventory_stock (sku, on_hand, reserved, updated_at) VALUES (?, 1000, 0, datetime('now'))",
               ((f"SKU-{n:07d}",) for n in range(first, last + 1)))
db.execute("COMMIT")
db.execute("ANALYZE")
# A bulk load leaves the FTS5 indexes in many segments, each of which a search must look in; merging them is
# what an operator does after an import.
for table in ("catalog_title_words", "catalog_all_words"):
    db.execute(f"INSERT INTO {table} ({table}) VALUES ('optimize')")
db.commit()
# And the import's pages go from the WAL into the database file, as PostgreSQL's CHECKPOINT above.
db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
PY
}

ms() { # wrk latency (850.00us, 1.20ms, 2.00s) -> milliseconds
  awk '{ v=$1; if (v ~ /us$/) { sub(/us$/,"",v); v/=1000 } else if (v ~ /ms$/) { sub(/ms$/,"",v) } else if (v ~ /s$/) { sub(/s$/,"",v); v*=1000 } printf "%.2f", v }' <<<"$1"
}
TICK=$(getconf CLK_TCK)
cpu_of() { # pids... -> CPU seconds used so far
  local total=0 pid
  for pid in "$@"; do
    [ -r "/proc/$pid/stat" ] && total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
  done
  awk -v t="$total" -v k="$TICK" 'BEGIN {printf "%.3f", t / k}'
}
pg_ticks() { # "pid ticks" of every PostgreSQL process
  local pid
  for pid in $(pgrep -x postgres); do
    [ -r "/proc/$pid/stat" ] && awk -v p="$pid" '{print p, $14 + $15}' "/proc/$pid/stat" 2>/dev/null
  done
  true
}
pg_cpu_between() { # before-file after-file -> CPU seconds of the processes alive at both samples
  awk -v k="$TICK" 'NR == FNR {t[$1] = $2; next} ($1 in t) {s += $2 - t[$1]} END {printf "%.3f", s / k}' "$1" "$2"
}
pg_xacts() { psql "$PG_URL" -Atc "SELECT COALESCE(SUM(xact_commit + xact_rollback), 0) FROM pg_stat_database WHERE datname LIKE 'shop_bench_%_$SUFFIX'"; }

cat >"$WORK/paths.lua" <<'LUA'
-- BENCH_KIND picks the request; ids and SKUs are random among the BENCH_N seeded products.
local kind = os.getenv("BENCH_KIND")
local n = tonumber(os.getenv("BENCH_N"))
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end
function init(args)
  math.randomseed(os.time() * 1000 + (thread_id or 0))
end
local colours = {"red", "blue", "green", "black", "white", "steel", "oak", "linen", "wool", "glass", "stone",
                 "brass", "cedar", "silk", "clay", "iron"}
-- The six-letter word in product i's name (see the seeding).
local function word(i)
  local h = (i * 2654435761) % 4294967296
  local out = ""
  for _ = 1, 6 do
    out = out .. string.char(97 + h % 26)
    h = math.floor(h / 26)
  end
  return out
end
request = function()
  local i = math.random(n)
  if kind == "product" then
    return wrk.format("GET", string.format("/api/v1/products/00000000-0000-7000-8000-%012x", i))
  elseif kind == "inventory" then
    return wrk.format("GET", string.format("/api/v1/inventory/SKU-%07d", i))
  elseif kind == "search" then
    return wrk.format("GET", "/api/v1/products?q=" .. word(i))
  elseif kind == "search_common" then
    return wrk.format("GET", "/api/v1/products?q=" .. colours[1 + i % 16])
  elseif kind == "search_mixed" then
    return wrk.format("GET", "/api/v1/products?q=chair%20" .. word(i))
  elseif kind == "listing" then
    return wrk.format("GET", "/api/v1/products?limit=20")
  else
    return wrk.format("GET", "/health/live")
  end
end
LUA

ROWS=()
declare -A RPS
# label kind size connections [port] -> one table row; RPS[label] for the ratios
measure() {
  local label=$1 kind=$2 n=$3 conns=$4 port="${5:-$PORT}" pid="${6:-$SERVER}" out rps p50 p99 requests s0 s1 x0=0 x1=0 per_db="" per_x=""
  s0=$(cpu_of "$pid"); pg_ticks >"$WORK/pg0"
  BENCH_KIND=$kind BENCH_N=$n wrk -t2 -c"$conns" -d"${DURATION}s" --timeout 5s --latency -s "$WORK/paths.lua" "http://127.0.0.1:$port" >"$WORK/wrk.out" &
  local wrk_pid=$!
  # PostgreSQL's backends report their counts at most once a second while busy (and only after 10 s once
  # idle), so transactions are counted over the middle of the run, as a rate.
  if [ "$BACKEND" = postgres ] && [ "$DURATION" -ge 4 ]; then
    sleep 1; x0=$(pg_xacts); sleep $((DURATION - 2)); x1=$(pg_xacts)
  fi
  wait "$wrk_pid"
  out=$(cat "$WORK/wrk.out")
  s1=$(cpu_of "$pid"); pg_ticks >"$WORK/pg1"
  if grep -q "Non-2xx\|Socket errors" <<<"$out"; then echo "$label: errors"; echo "$out"; tail -20 "$WORK/server.log"; exit 1; fi
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(ms "$(awk '$1=="50%" {print $2}' <<<"$out")")
  p99=$(ms "$(awk '$1=="99%" {print $2}' <<<"$out")")
  requests=$(awk '/requests in/ {print $1}' <<<"$out")
  if [ "$BACKEND" = postgres ]; then
    per_db=$(awk -v c="$(pg_cpu_between "$WORK/pg0" "$WORK/pg1")" -v n="$requests" 'BEGIN {printf "%.0f", c * 1e6 / n}')
    [ "$DURATION" -ge 4 ] && per_x=$(awk -v a="$x0" -v b="$x1" -v r="$rps" -v t=$((DURATION - 2)) 'BEGIN {printf "%.2f", (b - a) / t / r}')
  fi
  RPS[$label]=$rps
  ROWS+=("$(printf '| %-34s | %8.0f | %6s | %6s | %6s | %6s | %5s |' "$label" "$rps" "$p50" "$p99" \
    "$(awk -v a="$s0" -v b="$s1" -v n="$requests" 'BEGIN {printf "%.0f", (b - a) * 1e6 / n}')" "${per_db:--}" "${per_x:--}")")
  echo "${ROWS[-1]}" >&2
}
ratio() { awk -v a="${RPS[$1]:-0}" -v b="${RPS[$2]:-0}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "n/a" }'; }

# The ceiling: pgbench's select-only script over TCP with prepared statements, in the same sitting.
echo "pgbench -S ceiling..." >&2
PGB_URL="$(database pgbench)"
pgbench -q -i -s 10 "${PGB_URL%%\?*}" >/dev/null 2>&1
# Without TLS, as the servers connect: libpq prefers TLS when the server offers it.
CEILING=$(pgbench -S -M prepared -c 8 -j 2 -T "$DURATION" "$PGB_URL" 2>/dev/null |
  awk '/^tps/ {print int($3)}')
RPS[pgbench]=$CEILING
echo "pgbench -S: $CEILING tps" >&2

STARTS=()
for BACKEND in $BACKENDS; do
  if [ "$BACKEND" = postgres ]; then URL="$(database reads)"; else rm -rf "$WORK/data"; URL="sqlite://$WORK/data/shop.db"; fi
  start "$URL"
  seeded=0
  for size in $SIZES; do
    echo "$BACKEND: seeding $size products..." >&2
    if [ "$BACKEND" = postgres ]; then seed_postgres "$URL" $((seeded + 1)) "$size"; else seed_sqlite "$WORK/data/shop.db" $((seeded + 1)) "$size"; fi
    seeded=$size
    tag="$BACKEND $size"
    measure "$tag product c=64" product "$size" 64
    if [ "$BACKEND" = postgres ]; then
      # The same one-row read straight from pgbench, on this dataset: how much of a drop at a larger size is
      # the database's own (its cache) rather than shop's.
      echo '\set i random(1, '"$size"')' >"$WORK/product.pgb"
      echo "SELECT id, sku, name, description, price_minor, currency, active, created_at, updated_at FROM catalog_products WHERE id = '00000000-0000-7000-8000-' || lpad(to_hex(:i::int), 12, '0');" >>"$WORK/product.pgb"
      RPS["pgbench product $size"]=$(pgbench -n -M prepared -c 8 -j 2 -T "$DURATION" -f "$WORK/product.pgb" "$URL" 2>/dev/null |
        awk '/^tps/ {print int($3)}')
      ROWS+=("$(printf '| %-34s | %8.0f | %6s | %6s | %6s | %6s | %5s |' "$tag pgbench: the same read" "${RPS["pgbench product $size"]:-0}" - - - - -)")
      echo "${ROWS[-1]}" >&2
    fi
    if [ "$BACKEND" = postgres ] && [ "$size" = "${SIZES%% *}" ]; then
      (exec env DATABASE_URL="$URL" ADDR="127.0.0.1:$PLAIN_PORT" "$PLAIN_BIN" >"$WORK/plain.log" 2>&1) &
      PLAIN_PID=$!
      for _ in $(seq 1 100); do curl -fsS -o /dev/null "http://127.0.0.1:$PLAIN_PORT/api/v1/products/00000000-0000-7000-8000-000000000001" 2>/dev/null && break; sleep 0.1; done
      measure "$tag plain actix-web + diesel product c=64" product "$size" 64 "$PLAIN_PORT" "$PLAIN_PID"
      kill "$PLAIN_PID" 2>/dev/null || true; wait "$PLAIN_PID" 2>/dev/null || true
    fi
    measure "$tag product c=16" product "$size" 16
    measure "$tag listing" listing "$size" 64
    measure "$tag inventory" inventory "$size" 64
    measure "$tag search" search "$size" 64
    measure "$tag search common" search_common "$size" 64
    measure "$tag search mixed" search_mixed "$size" 64
    if [ "$size" = "${SIZES%% *}" ]; then
      measure "$tag /health/live" live "$size" 64
      measure "$tag bare /health/live" live "$size" 64 "$BARE_PORT"
    fi
  done
  stop
  read -r start_ms rss_mb < <(cold_start "$URL" "")
  read -r start1_ms rss1_mb < <(cold_start "$URL" 1)
  STARTS+=("$(printf '| %-10s | %6s ms | %6s MB | %6s ms | %6s MB |' "$BACKEND" "$start_ms" "$rss_mb" "$start1_ms" "$rss1_mb")")
done

echo
echo "Machine: $(nproc) cores, $(awk '/model name/ {$1=$2=$3=""; print; exit}' /proc/cpuinfo | sed 's/^ *//'); $(date -u +%F); $PROFILE build; wrk -t2, ${DURATION}s per row"
echo "pgbench -S -M prepared -c 8 -j 2 (the ceiling): $CEILING tps"
echo
echo "| run                                |    req/s | p50 ms | p99 ms | shop µs/req | PG µs/req | PG xacts/req |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
echo
echo "| backend    | cold start to ready | idle RSS | same, MALLOC_ARENA_MAX=1 (Dockerfile) | idle RSS |"
echo "|---|---|---|---|---|"
printf '%s\n' "${STARTS[@]}"
echo
first="${SIZES%% *}"; last="${SIZES##* }"
echo "Ratios (goal in brackets):"
for BACKEND in $BACKENDS; do
  if [ "$BACKEND" = postgres ]; then
    echo "  postgres product read / pgbench -S:       $(ratio "postgres $first product c=64" pgbench) [>= 0.45]"
    echo "  plain actix-web + diesel / pgbench -S:    $(ratio "postgres $first plain actix-web + diesel product c=64" pgbench) (the yardstick's own)"
    echo "  postgres product read / plain server:     $(ratio "postgres $first product c=64" "postgres $first plain actix-web + diesel product c=64") [>= 0.8: the issue's 0.45 was 0.8 of it]"
  fi
  echo "  $BACKEND listing / product read:          $(ratio "$BACKEND $first listing" "$BACKEND $first product c=64") [>= 0.7]"
  echo "  $BACKEND inventory read / product read:   $(ratio "$BACKEND $first inventory" "$BACKEND $first product c=64") [>= 1.0]"
  echo "  $BACKEND search / product read:           $(ratio "$BACKEND $first search" "$BACKEND $first product c=64") [>= 0.5]"
  echo "  $BACKEND search common / product read:    $(ratio "$BACKEND $first search common" "$BACKEND $first product c=64") [>= 0.5]"
  echo "  $BACKEND search mixed / product read:     $(ratio "$BACKEND $first search mixed" "$BACKEND $first product c=64") [>= 0.5]"
  echo "  $BACKEND /health/live / bare handler:     $(ratio "$BACKEND $first /health/live" "$BACKEND $first bare /health/live") [>= 0.9]"
  if [ "$first" != "$last" ]; then
    echo "  $BACKEND product read at $last / at $first:   $(ratio "$BACKEND $last product c=64" "$BACKEND $first product c=64") [>= 0.9]"
    if [ "$BACKEND" = postgres ]; then
      echo "  pgbench, the same read, at $last / at $first: $(ratio "pgbench product $last" "pgbench product $first") (the database's own drop)"
    fi
    echo "  $BACKEND listing at $last / at $first:        $(ratio "$BACKEND $last listing" "$BACKEND $first listing") [>= 0.9]"
    echo "  $BACKEND search at $last / at $first:         $(ratio "$BACKEND $last search" "$BACKEND $first search") [>= 0.8]"
    echo "  $BACKEND search common at $last / at $first:  $(ratio "$BACKEND $last search common" "$BACKEND $first search common") [>= 0.8]"
    echo "  $BACKEND search mixed at $last / at $first:   $(ratio "$BACKEND $last search mixed" "$BACKEND $first search mixed") [>= 0.8]"
  fi
done
