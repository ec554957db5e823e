#!/bin/bash
# tests/fuzz/campaign.sh TARGET|all SECONDS
#
# Runs libFuzzer targets one at a time for SECONDS each (one process, no
# -jobs/-fork: the build machines are shared), with the target's .dict, then
# folds what they found into the checked-in corpus and prints, per target,
# the edges ("cov") and executions.
#
# The merge counts edges, not hit-count buckets (-merge=1 -use_counters=0):
# about a quarter of the files for the same edges, so the corpus stays small
# enough to check in and to replay in every build. By default it only adds
# the new inputs that reach edges the corpus does not, named by their SHA-1
# as libFuzzer names them; nothing else changes. With MINIMIZE=1 the
# SHA-1-named files are replaced by a small set of old and new inputs that
# covers every edge they cover beyond the hand-named seeds, which are
# always kept (a merge into a directory holding only the seeds). Use it
# once in a while: the set it picks differs from run to run.
#
# Builds $FUZZ_BUILD (default build-fuzz: clang, -Dfuzz=true, ASan+UBSan) if
# needed. Crashes, leaks, timeouts and UBSan reports stop a target; the input
# is saved as $FUZZ_BUILD/fuzz-artifacts/<target>-crash-<sha1> (or -leak-,
# -timeout-, -oom-) and the script exits 1. Logs are in the same directory.
# Targets are every libFuzzer executable tests/fuzz/meson.build defines.
set -uo pipefail
shopt -s nullglob

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${FUZZ_BUILD:-$ROOT/build-fuzz}
ART=$BUILD/fuzz-artifacts
PY=/usr/bin/python3

if [ $# -ne 2 ] || ! [[ $2 =~ ^[0-9]+$ ]] || [ "$2" -lt 1 ]; then
        echo "usage: $0 TARGET|all SECONDS" >&2
        exit 2
fi
want=$1 secs=$2

if [ ! -f "$BUILD/build.ninja" ]; then
        CC=clang meson setup "$BUILD" "$ROOT" -Dfuzz=true -Db_sanitize=address,undefined \
                -Db_lundef=false -Dbuildtype=debugoptimized >/dev/null || exit 1
fi
ninja -C "$BUILD" fuzz >/dev/null || {
        echo "building the fuzzers failed (is $BUILD configured with -Dfuzz=true?)" >&2
        exit 1
}

mapfile -t targets < <(meson introspect --targets "$BUILD" | $PY -c '
import json, sys
for t in json.load(sys.stdin):
    n = t["name"]
    if t["type"] == "executable" and n.startswith("fuzz-") and not n.endswith("-replay"):
        print(n[len("fuzz-"):])' | sort)
if [ "$want" != all ]; then
        printf '%s\n' "${targets[@]}" | grep -qx -- "$want" || {
                echo "unknown target '$want'; targets: ${targets[*]}" >&2
                exit 2
        }
        targets=("$want")
fi

mkdir -p "$ART"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
hashed='^[0-9a-f]{40}$'

cov_of() { # FUZZER DIR -> "cov ft" of the corpus, as libFuzzer's INITED line
        "$1" -runs=0 "$2" 2>&1 | sed -n 's/.*INITED cov: \([0-9]*\) ft: \([0-9]*\).*/\1 \2/p'
}

status=0
rows=()
for t in "${targets[@]}"; do
        fz=$BUILD/tests/fuzz/fuzz-$t
        corpus=$ROOT/tests/fuzz/corpus/$t
        dict=$ROOT/tests/fuzz/$t.dict
        log=$ART/$t.log
        args=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
                -artifact_prefix="$ART/$t-")
        [ -f "$dict" ] && args+=(-dict="$dict")

        mkdir -p "$corpus"
        files0=$(ls "$corpus" | wc -l)
        read -r cov0 ft0 < <(cov_of "$fz" "$corpus")
        new=$(mktemp -d "/tmp/fuzz-$t-new.XXXXXX")
        echo "==> fuzz-$t: ${secs}s from $files0 inputs (cov $cov0, ft $ft0); log $log" >&2
        "$fz" "${args[@]}" "$new" "$corpus" >"$log" 2>&1
        rc=$?
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
        finding=-
        if [ $rc -ne 0 ]; then
                finding=$(sed -n "s|.*Test unit written to $ART/||p" "$log" | tail -1)
                finding=${finding:-"exit $rc"}
                grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error)' "$log" | head -5 >&2
                status=1
        fi

        merge=(-merge=1 -use_counters=0 -timeout=10 -rss_limit_mb=2048
                -artifact_prefix="$ART/$t-merge-")
        if [ "${MINIMIZE:-0}" = 1 ]; then
                # Re-minimize the hash-named part of the corpus against the seeds.
                min=$(mktemp -d "/tmp/fuzz-$t-min.XXXXXX")
                old=$(mktemp -d "/tmp/fuzz-$t-old.XXXXXX")
                for f in "$corpus"/*; do
                        if [[ $(basename "$f") =~ $hashed ]]; then
                                cp "$f" "$old/"
                        else
                                cp "$f" "$min/"
                        fi
                done
                if "$fz" "${merge[@]}" "$min" "$old" "$new" >"$ART/$t-merge.log" 2>&1; then
                        find "$corpus" -maxdepth 1 -type f -regextype posix-egrep \
                                -regex ".*/[0-9a-f]{40}" -delete
                        for f in "$min"/*; do
                                [[ $(basename "$f") =~ $hashed ]] && cp "$f" "$corpus/"
                        done
                else
                        echo "fuzz-$t: merge failed, corpus unchanged; see $ART/$t-merge.log" >&2
                        status=1
                fi
                rm -rf "$min" "$old"
        elif ! "$fz" "${merge[@]}" "$corpus" "$new" >"$ART/$t-merge.log" 2>&1; then
                echo "fuzz-$t: merge failed; see $ART/$t-merge.log" >&2
                status=1
        fi
        rm -rf "$new"

        files1=$(ls "$corpus" | wc -l)
        read -r cov1 ft1 < <(cov_of "$fz" "$corpus")
        rows+=("$(printf '%-12s %6s %12s %9s %9s %7s %7s  %s' "$t" "$secs" "${execs:-?}" \
                "$cov0/$ft0" "$cov1/$ft1" "$files0" "$files1" "$finding")")
done

printf '%-12s %6s %12s %9s %9s %7s %7s  %s\n' target secs execs "cov/ft0" "cov/ft1" \
        files0 files1 finding
printf '%s\n' "${rows[@]}"
exit $status
