#!/usr/bin/env bash
# Fuzz campaigns over every cargo-fuzz target of the repository, with a ledger.
#
# Usage (from anywhere; paths are relative to the repository root):
#
#   scripts/fuzz/run.sh list                      # every target, in campaign priority order
#   scripts/fuzz/run.sh build [TARGET...]         # build the fuzz binaries
#   scripts/fuzz/run.sh run [--cpu S] [--until HH:MM] [--loop] [TARGET...]
#                                                 # fuzz each TARGET (default: all) for S
#                                                 # CPU seconds (default 600), then cmin
#   scripts/fuzz/run.sh cmin [TARGET...]          # minimise the committed corpora
#   scripts/fuzz/run.sh summary                   # CPU hours, execs, crashes per target
#
# A TARGET is `<crate dir>/<fuzz target>`, e.g. `meshmon-trace/decode_v04` or
# `meshmon-core/dispatch`; `list` prints them all.
#
# What a run does, for each target in turn:
#   1. builds it (`cargo +nightly fuzz build -O -a -s none`: release code with debug
#      assertions and overflow checks, no sanitizer — the libraries have no `unsafe`, so
#      AddressSanitizer would only halve the exec rate);
#   2. runs the libFuzzer binary under `nice -n 19` on `<crate>/fuzz/corpus/<target>/`
#      (committed, so every campaign resumes from the last one) until the process itself
#      has used S seconds of CPU (user + system, read from /proc/<pid>/stat every second
#      and measured exactly by GNU time at exit), or until --until (UTC) passes, or until
#      it finds a crash (written to `<crate>/fuzz/artifacts/<target>/`, git-ignored);
#   3. minimises the corpus with `cargo fuzz cmin` on edge coverage (`-use_counters=0`:
#      with hit counters too the corpus keeps thousands of files per target);
#   4. appends one row to the committed ledger `fuzz/LEDGER.tsv`: UTC date, target, CPU
#      seconds, wall seconds, execs, corpus files before / after (after cmin), crashes,
#      crash artifact names, the commit fuzzed (read when the run starts; a `+` after it
#      when the work tree had other changes).
# --loop repeats the whole target list until --until. Two `run` processes may work at
# the same time on disjoint target lists (the ledger is appended one line at a time).
#
# Environment: FUZZ_TARGET_DIR (build dir of every fuzz crate; default
# $CARGO_TARGET_DIR/fuzz, else target/fuzz), FUZZ_RSS_MB (default 2048), FUZZ_TIMEOUT
# (seconds per input before libFuzzer reports a timeout; default 10).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
LEDGER="$ROOT/fuzz/LEDGER.tsv"
FUZZ_TARGET_DIR="${FUZZ_TARGET_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/fuzz}"
TRIPLE="$(rustc +nightly -vV | sed -n 's/^host: //p')"
BIN_DIR="$FUZZ_TARGET_DIR/$TRIPLE/release"
BUILD_FLAGS=(-O -a -s none --target-dir "$FUZZ_TARGET_DIR")
CLK="$(getconf CLK_TCK)"

# Campaign priority: what strangers can reach first (trace intake, DogStatsD, scrapes),
# then logs, autodiscovery, alerting, the cluster-agent dispatch.
ALL_TARGETS=(
    meshmon-trace/decode_v04
    meshmon-trace/decode_v05
    meshmon-trace/decode_v07
    meshmon-trace/decode_json
    meshmon-trace/decode_zipkin
    meshmon-core/dogstatsd
    meshmon-prom/parse
    meshmon-logs/parse_and_mine
    meshmon-logs/rules
    meshmon-core/ad_expand
    meshmon-core/ad_resolve
    meshmon-alert/csv_and_detect
    meshmon-core/dispatch
)

die() { echo "run.sh: $*" >&2; exit 2; }

check_target() {
    local spec="$1" crate="${1%/*}" t="${1##*/}"
    [[ -f "$crate/fuzz/fuzz_targets/$t.rs" ]] || die "unknown target $spec (see: run.sh list)"
}

build() {
    local spec="$1" crate="${1%/*}" t="${1##*/}"
    (cd "$crate/fuzz" && nice -n 19 cargo +nightly fuzz build "${BUILD_FLAGS[@]}" "$t")
}

count_files() { find "$1" -maxdepth 1 -type f 2>/dev/null | wc -l; }

cmin() {
    local spec="$1" crate="${1%/*}" t="${1##*/}"
    local corpus="$ROOT/$crate/fuzz/corpus/$t"
    [[ "$(count_files "$corpus")" -gt 0 ]] || return 0
    (cd "$crate/fuzz" && nice -n 19 cargo +nightly fuzz cmin "${BUILD_FLAGS[@]}" "$t" "$corpus" \
        -- -use_counters=0 -rss_limit_mb="${FUZZ_RSS_MB:-2048}" -timeout="${FUZZ_TIMEOUT:-10}") \
        >"$FUZZ_TARGET_DIR/logs/${crate//\//_}-$t.cmin.log" 2>&1 \
        || echo "run.sh: cmin of $spec failed, see $FUZZ_TARGET_DIR/logs/" >&2
}

# CPU ticks (user + system) of a live process.
cpu_ticks() {
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    stat="${stat##*) }" # drop "pid (comm) "
    # shellcheck disable=SC2086
    set -- $stat
    echo $(( ${12} + ${13} ))
}

run_one() {
    local spec="$1" budget="$2" until_epoch="$3"
    local crate="${spec%/*}" t="${spec##*/}"
    local corpus="$ROOT/$crate/fuzz/corpus/$t" art="$ROOT/$crate/fuzz/artifacts/$t"
    local logs="$FUZZ_TARGET_DIR/logs" stamp
    stamp="$(date -u +%Y%m%dT%H%M%SZ)"
    # The commit the binary is built from ("+" when tracked files other than the corpora
    # and the ledger differ from it; `:!*/fuzz/corpus` excluded nothing, as `*` in a
    # pathspec does not match the files below the directory).
    local commit
    commit="$(git rev-parse --short HEAD)"
    git diff --quiet HEAD -- . ':(exclude,glob)**/fuzz/corpus/**' ':(exclude)fuzz/LEDGER.tsv' || commit="$commit+"
    mkdir -p "$corpus" "$art" "$logs"
    build "$spec" >"$logs/${crate//\//_}-$t.build.log" 2>&1 \
        || { echo "run.sh: build of $spec failed, see $logs/" >&2; return 1; }
    local log="$logs/${crate//\//_}-$t.$stamp.log" timef="$logs/${crate//\//_}-$t.$stamp.time"
    local before arts_before
    before="$(count_files "$corpus")"
    arts_before="$(ls "$art")"
    local start_s end_s
    start_s="$(date +%s)"
    # nice execs GNU time, whose only child is the fuzzer: time reports its exact rusage.
    nice -n 19 /usr/bin/time -f '%U %S' -o "$timef" "$BIN_DIR/$t" \
        -artifact_prefix="$art/" -print_final_stats=1 \
        -rss_limit_mb="${FUZZ_RSS_MB:-2048}" -timeout="${FUZZ_TIMEOUT:-10}" \
        -max_total_time=$(( budget * 20 )) \
        "$corpus" >"$log" 2>&1 &
    local tpid=$! fpid="" ticks=0
    while kill -0 "$tpid" 2>/dev/null; do
        [[ -n "$fpid" ]] || fpid="$(pgrep -P "$tpid" || true)"
        if [[ -n "$fpid" ]] && t_now="$(cpu_ticks "$fpid")"; then
            ticks="$t_now"
            if (( ticks / CLK >= budget )) || (( $(date +%s) >= until_epoch )); then
                kill -INT "$fpid" 2>/dev/null || true
                break
            fi
        fi
        sleep 1
    done
    wait "$tpid" || true
    end_s="$(date +%s)"
    local cpu
    if [[ -s "$timef" ]] && read -r u s < <(tail -n 1 "$timef") && [[ "$u" =~ ^[0-9.]+$ ]]; then
        cpu="$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.1f", u + s }')"
    else
        cpu="$(awk -v t="$ticks" -v c="$CLK" 'BEGIN { printf "%.1f", t / c }')"
    fi
    local execs
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    [[ -n "$execs" ]] || execs="$(grep -o '^#[0-9]*' "$log" | tail -n 1 | tr -d '#' || true)"
    [[ -n "$execs" ]] || execs=0
    local new_arts crashes
    new_arts="$(comm -13 <(echo "$arts_before" | sort) <(ls "$art" | sort) \
        | grep -E '^(crash|leak|timeout|oom)-' | paste -sd, - || true)"
    crashes=0
    [[ -z "$new_arts" ]] || crashes="$(echo "$new_arts" | tr ',' '\n' | wc -l)"
    cmin "$spec"
    local after
    after="$(count_files "$corpus")"
    [[ -f "$LEDGER" ]] || printf 'date_utc\ttarget\tcpu_s\twall_s\texecs\tcorpus_before\tcorpus_after\tcrashes\tartifacts\tcommit\n' >"$LEDGER"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$stamp" "$spec" "$cpu" \
        "$(( end_s - start_s ))" "$execs" "$before" "$after" "$crashes" "${new_arts:--}" \
        "$commit" >>"$LEDGER"
    echo "run.sh: $spec: ${cpu} CPU s, $execs execs, corpus $before -> $after, $crashes crash(es) ${new_arts}"
}

summary() {
    [[ -f "$LEDGER" ]] || die "no ledger yet ($LEDGER)"
    awk -F'\t' '
        NR == 1 { next }
        { cpu[$2] += $3; ex[$2] += $5; runs[$2]++; cr[$2] += $8; last[$2] = $7
          if (!($2 in seen)) { order[n++] = $2; seen[$2] = 1 } }
        END {
            printf "%-36s %5s %9s %14s %7s %8s %s\n", "target", "runs", "cpu_h", "execs", "crashes", "corpus", ""
            for (i = 0; i < n; i++) {
                t = order[i]; tc += cpu[t]; te += ex[t]
                printf "%-36s %5d %9.3f %14d %7d %8d %s\n", t, runs[t], cpu[t] / 3600, ex[t], cr[t], last[t], (cpu[t] < 3600 ? "below 1 h" : "")
            }
            printf "%-36s %5s %9.3f %14d\n", "total", "", tc / 3600, te
        }' "$LEDGER"
    echo "corpus size on disk: $(du -sch "$ROOT"/*/fuzz/corpus "$ROOT"/examples/*/fuzz/corpus 2>/dev/null | tail -n 1 | cut -f1)"
}

cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
    list) printf '%s\n' "${ALL_TARGETS[@]}" ;;
    summary) summary ;;
    build | cmin)
        targets=("$@")
        [[ ${#targets[@]} -gt 0 ]] || targets=("${ALL_TARGETS[@]}")
        mkdir -p "$FUZZ_TARGET_DIR/logs"
        for s in "${targets[@]}"; do check_target "$s"; "$cmd" "$s"; done
        ;;
    run)
        budget=600 until_epoch=$(( $(date +%s) + 10 * 365 * 86400 )) loop=0 targets=()
        while [[ $# -gt 0 ]]; do
            case "$1" in
                --cpu) budget="$2"; shift 2 ;;
                --until) until_epoch="$(date -u -d "$2" +%s)"; shift 2 ;;
                --loop) loop=1; shift ;;
                -*) die "unknown option $1" ;;
                *) targets+=("$1"); shift ;;
            esac
        done
        [[ ${#targets[@]} -gt 0 ]] || targets=("${ALL_TARGETS[@]}")
        for s in "${targets[@]}"; do check_target "$s"; done
        while :; do
            for s in "${targets[@]}"; do
                (( $(date +%s) < until_epoch - 30 )) || exit 0
                run_one "$s" "$budget" "$until_epoch" || true
            done
            [[ $loop -eq 1 ]] || break
        done
        ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
esac
