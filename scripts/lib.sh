#!/bin/bash
# Shared helpers for scripts/demo.sh and scripts/test.sh (sourced).

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=/usr/bin/python3

PACKAGES=(
        meson ninja-build pkg-config gcc clang libclang-rt-14-dev llvm-14
        libuv1-dev android-libboringssl-dev libnl-3-dev libnl-route-3-dev libmsgpack-dev
        libsystemd-dev libhiredis-dev libinih-dev libjansson-dev libc-ares-dev libcmocka-dev
        libnghttp2-dev nghttp2-client python3-h2
        redis-server python3 python3-pytest python3-redis python3-msgpack python3-dnslib
        python3-cryptography python3-yaml bind9-dnsutils prometheus
        clang-format-16 iproute2 curl openssl procps yggdrasil
        pebble unbound lego
        debhelper dpkg-dev lintian scdoc bash-completion man-db systemd
)

# Bold (log, on stdout) and bold red (err, on stderr) only when that stream
# is a terminal and NO_COLOR is unset: a log file or CI gets plain text.
_sgr() { [ -t "$1" ] && [ -z "${NO_COLOR-}" ]; }
log() {
        if _sgr 1; then printf '\033[1m==> %s\033[0m\n' "$*"; else printf '==> %s\n' "$*"; fi
}
err() {
        if _sgr 2; then printf '\033[1;31m==> %s\033[0m\n' "$*" >&2; else printf '==> %s\n' "$*" >&2; fi
}

# Install what is missing (idempotent; no apt-get update when all present).
install_deps() {
        local missing=()
        for p in "${PACKAGES[@]}"; do
                dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
                        missing+=("$p")
        done
        if [ ${#missing[@]} -gt 0 ]; then
                log "Installing: ${missing[*]}"
                export DEBIAN_FRONTEND=noninteractive
                apt-get update -qq
                apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
        fi
}

# build DIR [meson options...]
build() {
        local dir=$1
        shift
        if [ ! -f "$ROOT/$dir/build.ninja" ]; then
                meson setup "$ROOT/$dir" "$ROOT" "$@" >/dev/null
        else
                meson configure "$ROOT/$dir" "$@" >/dev/null
        fi
        # Quiet on success; on failure show what failed (ninja prints a failed
        # command's output, such as a forbidden #include, on stdout).
        local out
        if ! out=$(ninja -C "$ROOT/$dir" 2>&1); then
                printf '%s\n' "$out" | grep -v '^\[[0-9]*/[0-9]*\] '
                return 1
        fi
}
