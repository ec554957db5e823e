#!/bin/bash
# Builds the Debian package from the working tree (tracked and untracked,
# not ignored files) and checks it, then checks that `meson install` puts
# the same files in the same places:
#   - debian/changelog and meson.build agree on the version;
#   - dpkg-buildpackage -us -uc -b; lintian (errors and warnings fail; the
#     overrides in debian/ say why each remaining tag is expected);
#   - the package installs (dpkg -i) into a throwaway root: an overlay of
#     this machine's / over a tmpfs, in a private mount namespace, gone when
#     the script ends; nothing outside it is touched. There: the files are
#     where they belong, gatewayd/gatewayctl --version name the commit,
#     gatewayd --check-config accepts the shipped example and refuses a bad
#     file, man -l renders each page without a warning, systemd-analyze
#     verify accepts the unit, the unit is neither enabled nor started, bash
#     completion completes gatewayctl's commands, and the package purges;
#   - a default `meson setup` (no options) of the same tree installs the
#     same list of files as the package, and its unit verifies too.
# Prints one "ok - <check>" or "not ok - <check>" line per check (TAP) and
# a closing "N passed, N failed". Exits 1 when a check failed.
# Usage: scripts/package.sh [OUTDIR]  (OUTDIR keeps the .deb, the logs and
# the build tree; default: a temporary directory, removed at the end)
set -uo pipefail
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" -eq 0 ] || { echo "scripts/package.sh: run as root (dpkg -i in a throwaway root)" >&2; exit 2; }

OUT=${1:-}
if [ -z "$OUT" ]; then
        OUT=$(mktemp -d /tmp/gatewayd-package.XXXXXX)
        trap 'rm -rf "$OUT"' EXIT
fi
mkdir -p "$OUT"
PASS=0 FAIL=0
pass() { echo "ok - $*"; PASS=$((PASS + 1)); }
fail() { echo "not ok - $*"; FAIL=$((FAIL + 1)); }
check() { # name command...: ok when the command exits 0
        local name=$1
        shift
        if "$@"; then pass "$name"; else fail "$name"; fi
}
finish() {
        echo "$PASS passed, $FAIL failed"
        [ "$FAIL" -eq 0 ]
        exit $?
}

cd "$ROOT"
VERSION=$(sed -n "s/^ *version: *'\([^']*\)',.*/\1/p" meson.build | head -1)
DEBVERSION=$(dpkg-parsechangelog -S Version)
check "debian/changelog version $DEBVERSION is meson's $VERSION" [ "$DEBVERSION" = "$VERSION" ]

# A copy, so that the build leaves nothing in the tree and its outputs
# (written next to the source directory) land in $OUT. It has no .git:
# the commit is passed on.
COMMIT=$(git describe --always --dirty --abbrev=12 --exclude='*' 2>/dev/null || echo unknown)
SRC="$OUT/gatewayd-$VERSION"
rm -rf "$SRC"
mkdir -p "$SRC"
# (Files deleted but not yet committed are left out.)
git ls-files -z --cached --others --exclude-standard |
        $PY -c 'import os, sys; sys.stdout.buffer.write(b"".join(
                p + b"\0" for p in sys.stdin.buffer.read().split(b"\0") if p and os.path.lexists(p)))' |
        tar --null -T - -cf - | tar -xf - -C "$SRC"

if (cd "$SRC" && GATEWAYD_COMMIT=$COMMIT DEB_BUILD_OPTIONS="parallel=$(nproc)" \
        nice -n 10 dpkg-buildpackage -us -uc -b) >"$OUT/build.log" 2>&1; then
        pass "dpkg-buildpackage -us -uc -b"
else
        tail -30 "$OUT/build.log"
        fail "dpkg-buildpackage -us -uc -b (log: $OUT/build.log)"
        finish
fi
DEB=$(ls "$OUT"/gatewayd_"$VERSION"_*.deb)
CHANGES=$(ls "$OUT"/gatewayd_"$VERSION"_*.changes)

# Errors and warnings fail; debian/gatewayd.lintian-overrides says why the
# tags it lists are expected (--show-overrides would count those as failures
# too). Infos are shown. (lintian says that running as root is not
# recommended: it only reads here.)
if nice -n 10 lintian --fail-on error,warning --display-info "$CHANGES" 2>&1 |
        grep -v '^running with root privileges is not recommended!$' >"$OUT/lintian.log"
        [ "${PIPESTATUS[0]}" -eq 0 ]; then
        pass "lintian: no error or warning ($(grep -c '^gatewayd: ' debian/gatewayd.lintian-overrides) tags overridden with a reason)"
else
        fail "lintian"
fi
sed 's/^/# /' "$OUT/lintian.log"

# The files of a default meson install (no options: the project's default
# prefix), from meson's own list, without compiling anything.
if nice -n 10 meson setup "$OUT/meson" "$SRC" -Dcommit="$COMMIT" >"$OUT/meson-setup.log" 2>&1 &&
        meson introspect "$OUT/meson" --installed >"$OUT/meson-installed.json"; then
        $PY -c 'import json, sys; print("\n".join(sorted(json.load(open(sys.argv[1])).values())))' \
                "$OUT/meson-installed.json" >"$OUT/meson-files"
        # What the package has that meson does not install: Debian's own files.
        dpkg-deb -c "$DEB" | awk '$1 !~ /^d/ {sub(/^\./, "", $6); print $6}' |
                grep -v -e '^/usr/share/doc/gatewayd/changelog.gz$' -e '^/usr/share/doc/gatewayd/copyright$' \
                        -e '^/usr/share/lintian/overrides/gatewayd$' |
                sed 's/\.gz$//' | sort >"$OUT/deb-files"
        if diff -u "$OUT/meson-files" "$OUT/deb-files" >"$OUT/files.diff"; then
                pass "meson install and the package install the same $(wc -l <"$OUT/deb-files") files"
        else
                sed 's/^/# /' "$OUT/files.diff"
                fail "meson install and the package install the same files"
        fi
else
        tail -20 "$OUT/meson-setup.log"
        fail "meson setup (default options)"
fi

# The throwaway root. The checks run in it as one script whose TAP lines
# are counted here.
cat >"$OUT/in-root.sh" <<'EOF'
#!/bin/bash
set -u
t() { local name=$1; shift; if "$@"; then echo "ok - $name"; else echo "not ok - $name"; fi; }
quiet() { "$@" >/tmp/out 2>&1 || { sed 's/^/# /' /tmp/out; return 1; }; }
DEB=$1 COMMIT=$2 MESON_UNIT=$3
export DEBIAN_FRONTEND=noninteractive
t "dpkg -i (in a throwaway root)" quiet dpkg -i "$DEB"
for f in /usr/sbin/gatewayd /usr/bin/gatewayctl /lib/systemd/system/gatewayd.service \
        /usr/share/man/man8/gatewayd.8.gz /usr/share/man/man8/gatewayctl.8.gz \
        /usr/share/man/man5/gatewayd.conf.5.gz /usr/share/bash-completion/completions/gatewayctl \
        /usr/share/doc/gatewayd/examples/gatewayd.conf.example \
        /usr/share/doc/gatewayd/examples/gateway.yaml /usr/share/doc/gatewayd/copyright; do
        t "installed: $f" test -f "$f"
done
t "gatewayd --version names commit $COMMIT" \
        sh -c 'gatewayd --version | grep -qxF "gatewayd '"$(dpkg-query -W -f='${Version}' gatewayd)"' (commit '"$COMMIT"')"'
t "gatewayctl --version names commit $COMMIT" sh -c 'gatewayctl --version | grep -qF "(commit '"$COMMIT"')"'
t "gatewayd --check-config accepts the shipped example" \
        quiet gatewayd --check-config --config /usr/share/doc/gatewayd/examples/gatewayd.conf.example
printf '[gateway]\nenable = yes\n[log]\nlevel = loud\n' >/tmp/bad.conf
gatewayd -t --config /tmp/bad.conf 2>/tmp/bad.err
rc=$?
t "gatewayd -t refuses a bad file with every error (exit $rc)" \
        sh -c '[ '$rc' -eq 1 ] && grep -q "did you mean .enabled." /tmp/bad.err && grep -q "level: invalid value" /tmp/bad.err'
for page in gatewayd.8 gatewayctl.8 gatewayd.conf.5; do
        f=$(ls /usr/share/man/man*/"$page".gz)
        t "man -l $f: renders, no warning" \
                sh -c 'MANWIDTH=80 man --warnings -l "$1" >/tmp/man.out 2>/tmp/man.err && [ -s /tmp/man.out ] &&
                       [ ! -s /tmp/man.err ] || { sed "s/^/# /" /tmp/man.err; false; }' sh "$f"
done
# Every Documentation=man: link of the unit is looked up too.
t "systemd-analyze verify gatewayd.service" quiet systemd-analyze verify /lib/systemd/system/gatewayd.service
t "gatewayd.service is not enabled" sh -c '! ls /etc/systemd/system/*.wants/gatewayd.service 2>/dev/null'
t "gatewayd.service is not enabled (deb-systemd-helper)" sh -c '! deb-systemd-helper was-enabled gatewayd.service'
t "bash completion completes gatewayctl's commands" bash -c '
        . /usr/share/bash-completion/bash_completion
        _completion_loader gatewayctl
        COMP_WORDS=(gatewayctl re) COMP_CWORD=1 COMP_LINE="gatewayctl re" COMP_POINT=13
        _gatewayctl gatewayctl re gatewayctl
        [ "${COMPREPLY[*]}" = reload ]'
# meson's unit (its own ExecStart) against the installed binary.
cp "$MESON_UNIT" /lib/systemd/system/gatewayd.service
t "systemd-analyze verify (meson's gatewayd.service)" quiet systemd-analyze verify /lib/systemd/system/gatewayd.service
t "dpkg --purge" quiet dpkg --purge gatewayd
t "purged: no gatewayd files left" sh -c '! ls /usr/sbin/gatewayd /lib/systemd/system/gatewayd.service 2>/dev/null'
EOF
chmod +x "$OUT/in-root.sh"

MESON_UNIT="$OUT/meson/dist/gatewayd.service"
[ -f "$MESON_UNIT" ] || MESON_UNIT=/dev/null
# unshare: a mount namespace of our own; the overlay, proc and the tmpfs go
# away with it. The upper layer is a tmpfs, so nothing is written to disk.
unshare --mount --propagation private bash -s "$OUT" "$DEB" "$COMMIT" "$MESON_UNIT" >"$OUT/in-root.log" 2>&1 <<'EOF'
set -e
OUT=$1 DEB=$2 COMMIT=$3 MESON_UNIT=$4
R=$OUT/root-overlay
mkdir -p "$R"
mount -t tmpfs -o size=512m tmpfs "$R"
mkdir -p "$R/upper" "$R/work" "$R/root"
mount -t overlay overlay -o lowerdir=/,upperdir="$R/upper",workdir="$R/work" "$R/root"
mount -t proc proc "$R/root/proc"
mount --rbind /dev "$R/root/dev"
mount -t tmpfs tmpfs "$R/root/tmp"
mount -t tmpfs tmpfs "$R/root/run"
mkdir -p "$R/root/tmp/in"
cp "$DEB" "$OUT/in-root.sh" "$R/root/tmp/in/"
[ -f "$MESON_UNIT" ] && cp "$MESON_UNIT" "$R/root/tmp/in/meson-gatewayd.service"
chroot "$R/root" /tmp/in/in-root.sh "/tmp/in/$(basename "$DEB")" "$COMMIT" /tmp/in/meson-gatewayd.service
EOF
rc=$?
grep -E '^(ok|not ok|#)' "$OUT/in-root.log"
P=$(grep -c '^ok - ' "$OUT/in-root.log")
F=$(grep -c '^not ok - ' "$OUT/in-root.log")
PASS=$((PASS + P)) FAIL=$((FAIL + F))
if [ "$rc" -ne 0 ] || [ "$P" -eq 0 ]; then
        sed 's/^/# /' "$OUT/in-root.log" | tail -30
        fail "throwaway root (exit $rc)"
fi
finish
