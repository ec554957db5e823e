#!/bin/bash
# check-coverage.sh FUZZER CORPUS HARNESS.c
#
# Fails unless most of the edges FUZZER covers on CORPUS lie outside its
# harness file. libFuzzer only learns from instrumented code: when the
# libraries under test are built without -fsanitize=fuzzer-no-link, every
# covered edge is in the harness and a campaign mutates blind (issue 10:
# 120 edges for fuzz-http1 instead of 1,400). Edges are attributed to files
# with -print_coverage=1, which needs llvm-symbolizer on PATH.
set -uo pipefail

if [ $# -ne 3 ]; then
        echo "usage: $0 FUZZER CORPUS HARNESS.c" >&2
        exit 2
fi
fuzzer=$1 corpus=$2 harness=$3

out=$("$fuzzer" -runs=0 -print_coverage=1 "$corpus" 2>&1)
rc=$?
if [ $rc -ne 0 ]; then
        printf '%s\n' "$out" | tail -30
        echo "$fuzzer exited with $rc on its corpus" >&2
        exit 1
fi

# COVERED_FUNC: hits: H edges: COVERED/TOTAL FUNCTION FILE:LINE
read -r inited in_harness under_test unknown < <(printf '%s\n' "$out" | awk -v h="/$harness:" '
        /INITED cov:/ { for (i = 1; i < NF; i++) if ($i == "cov:") inited = $(i + 1) }
        /^COVERED_FUNC:/ {
                split($5, e, "/")
                if (NF < 7 || $7 !~ /\/.*:[0-9]+$/) unknown += e[1]
                else if (index($7, h)) harness += e[1]
                else other += e[1]
        }
        END { print inited + 0, harness + 0, other + 0, unknown + 0 }')

echo "$(basename "$fuzzer"): INITED cov: $inited; covered edges: $under_test in the code" \
        "under test, $in_harness in $harness, $unknown unattributed"
if [ "$inited" -eq 0 ] || [ $((in_harness + under_test)) -eq 0 ]; then
        echo "no coverage reported (is llvm-symbolizer installed?)" >&2
        exit 1
fi
if [ "$under_test" -le "$in_harness" ]; then
        echo "the code under test is not instrumented: build it with" \
                "-fsanitize=fuzzer-no-link (meson.build does so with -Dfuzz=true)" >&2
        exit 1
fi
