#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS_PER_TARGET each, one after another, and
# writes a Markdown table (executions, exec/s, new coverage units, peak RSS, crashes) to
# bench/results/fuzz-<date>.md (also printed). Exits 1 if any target crashed.
#
#   bench/fuzz.sh [SECONDS_PER_TARGET]     # default 600 (5 targets: ~50 min plus the build)
#
# Environment (optional):
#   FUZZ_TARGETS      space-separated subset of targets (default: all of `cargo fuzz list`)
#   FUZZ_MAX_LEN      libFuzzer -max_len (default 65536, as in fuzz/README.md)
#   FUZZ_EXTRA_ARGS   more libFuzzer flags, space-separated (e.g. "-rss_limit_mb=4096")
#   FUZZ_KEEP_CORPUS  directory to keep the new inputs found (DIR/TARGET/); default: discarded
#   BENCH_RESULTS_DIR where the report goes (default bench/results)
#   BENCH_DOCS        document whose "fuzz" section gets the report (default docs/BENCHMARKS.md;
#                     empty: do not touch it)
#   FUZZ_SECTION      that section's name (default fuzz; e.g. fuzz-collector for a run of a
#                     subset that should not replace the full campaign's table)
#
# The committed corpus fuzz/corpus/TARGET is only read: new inputs go to a temporary
# directory (to add them, run `cargo fuzz cmin` as fuzz/README.md says). Crash, leak, timeout
# and OOM inputs are copied to bench/results/fuzz-artifacts-<date>/TARGET/ with the log.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

SECS=${1:-600}
[[ $SECS =~ ^[0-9]+$ && $SECS -gt 0 ]] || { echo "fuzz.sh: SECONDS_PER_TARGET must be a positive whole number" >&2; exit 2; }
MAX_LEN=${FUZZ_MAX_LEN:-65536}
read -r -a EXTRA <<< "${FUZZ_EXTRA_ARGS:-}"
RESULTS=${BENCH_RESULTS_DIR:-$ROOT/bench/results}
STAMP=$(date +%Y-%m-%d-%H%M)
export RUSTC_BOOTSTRAP=1 # cargo-fuzz needs nightly flags; this lets the stable toolchain take them

command -v cargo > /dev/null || { echo "fuzz.sh: missing cargo: install Rust (rustup)" >&2; exit 2; }
cargo fuzz --version > /dev/null 2>&1 || {
  echo "fuzz.sh: missing cargo-fuzz: install it with 'cargo install cargo-fuzz --locked'" >&2
  exit 2
}
[[ -f fuzz/Cargo.toml ]] || { echo "fuzz.sh: no fuzz/Cargo.toml under $ROOT" >&2; exit 2; }

TMP=$(mktemp -d /tmp/ward-fuzz.XXXXXX)
had_artifacts=0
[[ -d fuzz/artifacts ]] && had_artifacts=1
FUZZ_PID=''
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n $FUZZ_PID ]] && kill -0 "$FUZZ_PID" 2> /dev/null; then
    kill -TERM "$FUZZ_PID" 2> /dev/null || true
    wait "$FUZZ_PID" 2> /dev/null || true
  fi
  rm -rf "$TMP"
  # cargo-fuzz creates fuzz/artifacts/TARGET even though -artifact_prefix sends artifacts
  # elsewhere: remove those directories again if they are empty and were not there before.
  if ((had_artifacts == 0)) && [[ -d fuzz/artifacts ]]; then
    find fuzz/artifacts -mindepth 1 -maxdepth 1 -type d -empty -delete 2> /dev/null || true
    rmdir fuzz/artifacts 2> /dev/null || true
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -n ${FUZZ_TARGETS:-} ]]; then
  read -r -a TARGETS <<< "$FUZZ_TARGETS"
else
  mapfile -t TARGETS < <(cargo fuzz list)
fi
((${#TARGETS[@]} > 0)) || { echo "fuzz.sh: no fuzz targets found (cargo fuzz list)" >&2; exit 2; }

echo "fuzz: building ${#TARGETS[@]} target(s) (release + ASan); ${SECS} s each" >&2
cargo fuzz build -O > "$TMP/build.log" 2>&1 || { tail -20 "$TMP/build.log" >&2; echo "fuzz.sh: cargo fuzz build failed" >&2; exit 1; }

stat_of() { # NAME LOG: value of libFuzzer's final stat::NAME, or "?"
  local v
  v=$(awk -v k="stat::$1:" '$1 == k {print $2}' "$2" | tail -1)
  echo "${v:-?}"
}

ROWS=() crashed=0
for t in "${TARGETS[@]}"; do
  seeds=fuzz/corpus/$t
  [[ -d $seeds ]] || { echo "fuzz.sh: no seed corpus $seeds for target $t" >&2; exit 2; }
  mkdir -p "$TMP/corpus/$t" "$TMP/artifacts/$t"
  log=$TMP/$t.log
  echo "fuzz: $t for ${SECS} s" >&2
  rc=0
  cargo fuzz run -O "$t" "$TMP/corpus/$t" "$seeds" -- \
    -max_total_time="$SECS" -max_len="$MAX_LEN" -print_final_stats=1 \
    -artifact_prefix="$TMP/artifacts/$t/" "${EXTRA[@]}" > "$log" 2>&1 &
  FUZZ_PID=$!
  wait "$FUZZ_PID" || rc=$?
  FUZZ_PID=''
  mapfile -t found < <(find "$TMP/artifacts/$t" -type f)
  execs=$(stat_of number_of_executed_units "$log")
  per_sec=$(stat_of average_exec_per_sec "$log")
  new_units=$(stat_of new_units_added "$log")
  rss=$(stat_of peak_rss_mb "$log")
  seed_files=$(find "$seeds" -type f | wc -l)
  if ((rc != 0 || ${#found[@]} > 0)); then
    crashed=$((crashed + 1))
    dest=$RESULTS/fuzz-artifacts-$STAMP/$t
    mkdir -p "$dest"
    cp "$log" "$dest/libfuzzer.log"
    ((${#found[@]} > 0)) && cp "${found[@]}" "$dest/"
    kinds=$(for f in "${found[@]}"; do basename "$f" | cut -d- -f1; done | sort | uniq -c | awk '{printf "%s%s x%s", sep, $2, $1; sep=", "}')
    result="**FAIL** (exit $rc${kinds:+; $kinds}): \`${dest#"$ROOT"/}/\`"
    echo "fuzz: $t FAILED (exit $rc), artifacts and log in $dest" >&2
    grep -m3 -E 'ERROR: libFuzzer|panicked at|SUMMARY' "$log" >&2 || true
  else
    result=ok
  fi
  if [[ -n ${FUZZ_KEEP_CORPUS:-} ]]; then
    mkdir -p "$FUZZ_KEEP_CORPUS/$t"
    cp -n "$TMP/corpus/$t"/* "$FUZZ_KEEP_CORPUS/$t/" 2> /dev/null || true
  fi
  ROWS+=("| \`$t\` | $SECS | $execs | $per_sec | $new_units | $seed_files | $rss | $result |")
done

mkdir -p "$RESULTS"
OUT=$RESULTS/fuzz-$STAMP.md
{
  echo "# Fuzzing run, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "| target | seconds | executions | exec/s | new units | seed files | peak RSS MB | result |"
  echo "|---|---:|---:|---:|---:|---:|---:|---|"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "- Machine: $(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2; exit}'), $(nproc) cores; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- Toolchain: $(rustc --version), $(cargo fuzz --version 2>/dev/null | head -1), RUSTC_BOOTSTRAP=1, ASan"
  echo "- Command: \`bench/fuzz.sh $SECS\`, i.e. per target \`RUSTC_BOOTSTRAP=1 cargo fuzz run -O TARGET TMP/corpus/TARGET fuzz/corpus/TARGET -- -max_total_time=$SECS -max_len=$MAX_LEN -print_final_stats=1 -artifact_prefix=...${FUZZ_EXTRA_ARGS:+ $FUZZ_EXTRA_ARGS}\`"
  echo "- Executions, exec/s, new units (inputs that added coverage, not kept) and peak RSS are libFuzzer's final \`stat::\` lines."
} > "$OUT"
cat "$OUT"
echo "fuzz: report written to $OUT" >&2
BENCH_DOCS=${BENCH_DOCS-$ROOT/docs/BENCHMARKS.md}
if [[ -n $BENCH_DOCS ]]; then python3 bench/lib/splice.py "$BENCH_DOCS" "${FUZZ_SECTION:-fuzz}" "$OUT"; fi
((crashed == 0)) || { echo "fuzz: $crashed target(s) failed" >&2; exit 1; }
