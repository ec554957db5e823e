#!/bin/bash
# Runs every test: clang-format check, a gcc -Werror build with unit tests,
# fuzz-corpus replays and the e2e suite, then the same suite again on a
# clang ASan+UBSan build, checks that the libFuzzer binaries' coverage
# reaches the code they fuzz, runs the unit tests under ThreadSanitizer,
# then builds the Debian package and checks it (scripts/package.sh).
# Installs what it needs; safe to re-run.
# Prints a closing "N passed, N failed, N skipped" line.
# The unit tests also run on a clang ThreadSanitizer build. Every build
# first checks each #include against the may-use table of
# docs/ARCHITECTURE.md (scripts/check-includes.py).
set -uo pipefail
. "$(dirname "$0")/lib.sh"

install_deps
cd "$ROOT"
RESULTS=$(mktemp -d /tmp/gatewayd-test.XXXXXX)
trap 'rm -rf "$RESULTS"' EXIT
STATUS=0

record() { # name passed failed skipped
        echo "$2 $3 $4" >"$RESULTS/$1"
        [ "$3" -eq 0 ] || STATUS=1
}

meson_results() { # builddir name
        $PY - "$1/meson-logs/testlog.json" <<'PY' >"$RESULTS/$2"
import json, sys
p = f = s = 0
try:
    for line in open(sys.argv[1]):
        r = json.loads(line)["result"]
        if r in ("OK", "EXPECTEDFAIL"):
            p += 1
        elif r == "SKIP":
            s += 1
        else:
            f += 1
except FileNotFoundError:
    f = 1
print(p, f, s)
PY
        read -r _ f _ <"$RESULTS/$2"
        [ "$f" -eq 0 ] || STATUS=1
}

pytest_results() { # junit.xml name exitcode
        $PY - "$1" "$3" <<'PY' >"$RESULTS/$2"
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
    suites = [root] if root.tag == "testsuite" else list(root)
    t = sum(int(s.get("tests", 0)) for s in suites)
    f = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
    s = sum(int(s.get("skipped", 0)) for s in suites)
    if t == 0 or (f == 0 and sys.argv[2] not in ("0",)):
        f = max(f, 1)
    print(t - f - s, f, s)
except Exception:
    print(0, 1, 0)
PY
        read -r _ f _ <"$RESULTS/$2"
        [ "$f" -eq 0 ] || STATUS=1
}

log "clang-format (16) check"
if git ls-files '*.c' '*.h' | xargs clang-format-16 --dry-run -Werror 2>"$RESULTS/format.log"; then
        record format 1 0 0
else
        head -40 "$RESULTS/format.log"
        record format 0 1 0
fi

log "gcc build (-Werror) + unit tests + fuzz corpus replay"
if build build -Dwerror=true -Dbuildtype=debugoptimized; then
        meson test -C build --print-errorlogs --num-processes 2
        meson_results build unit-gcc
else
        record unit-gcc 0 1 0
fi

log "e2e (pytest) against the gcc build"
GATEWAYD="$ROOT/build/daemon/gatewayd" GATEWAYCTL="$ROOT/build/cli/gatewayctl" \
        $PY -m pytest -q -p no:cacheprovider --junitxml="$RESULTS/e2e-gcc.xml" tests/e2e
pytest_results "$RESULTS/e2e-gcc.xml" e2e-gcc $?

log "clang ASan+UBSan build + unit tests + fuzz corpus replay"
export ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1:abort_on_error=0
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
if CC=clang build build-asan -Db_sanitize=address,undefined -Db_lundef=false \
        -Dbuildtype=debug -Dwerror=true; then
        meson test -C build-asan --print-errorlogs --num-processes 2 --timeout-multiplier 3
        meson_results build-asan unit-asan
else
        record unit-asan 0 1 0
fi

# ThreadSanitizer over the unit tests only: the proxy engine's workers,
# routes' lock-free snapshots, netns' worker and socket pool run threads
# there; tests/unit/tsan/ has the shim and suppressions it needs.
log "clang TSan build + unit tests"
if CC=clang build build-tsan -Db_sanitize=thread -Db_lundef=false \
        -Dbuildtype=debug -Dwerror=true; then
        meson test -C build-tsan --suite unit --print-errorlogs --num-processes 2 \
                --timeout-multiplier 3
        meson_results build-tsan unit-tsan
else
        record unit-tsan 0 1 0
fi

log "e2e (pytest) against the ASan+UBSan build"
GATEWAYD="$ROOT/build-asan/daemon/gatewayd" GATEWAYCTL="$ROOT/build-asan/cli/gatewayctl" \
        GW_TEST_TIMEOUT_MULTIPLIER=3 GW_SANITIZED=1 \
        $PY -m pytest -q -p no:cacheprovider --junitxml="$RESULTS/e2e-asan.xml" tests/e2e
pytest_results "$RESULTS/e2e-asan.xml" e2e-asan $?

log "clang libFuzzer build: the fuzzers' coverage reaches the code under test"
# Only the fuzz binaries and what they link ('ninja fuzz'), not the tree.
if { [ -f build-fuzz/build.ninja ] || CC=clang meson setup build-fuzz -Dfuzz=true \
        -Db_sanitize=address,undefined -Db_lundef=false >/dev/null; } &&
        meson configure build-fuzz -Dfuzz=true >/dev/null && ninja -C build-fuzz fuzz >/dev/null; then
        meson test -C build-fuzz --no-rebuild --print-errorlogs --suite fuzz-coverage
        meson_results build-fuzz fuzz-cov
else
        record fuzz-cov 0 1 0
fi

log "Debian package: build, lintian, install into a throwaway root (scripts/package.sh)"
scripts/package.sh | tee "$RESULTS/package.log"
rc=${PIPESTATUS[0]}
p=$(grep -c '^ok - ' "$RESULTS/package.log") f=$(grep -c '^not ok - ' "$RESULTS/package.log")
[ "$rc" -eq 0 ] || [ "$f" -gt 0 ] || f=1
record package "$p" "$f" 0

P=0 F=0 S=0
echo
for f in format unit-gcc e2e-gcc unit-asan e2e-asan fuzz-cov unit-tsan package; do
        read -r p fl s <"$RESULTS/$f"
        printf '  %-10s %4d passed, %d failed, %d skipped\n' "$f" "$p" "$fl" "$s"
        P=$((P + p)) F=$((F + fl)) S=$((S + s))
done
echo "$P passed, $F failed, $S skipped"
exit $STATUS
