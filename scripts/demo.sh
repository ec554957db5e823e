#!/bin/bash
# The self-contained demo: builds gatewayd, starts a private Redis and the
# daemon with an example config, deploys a name proxy and an FQDN proxy with
# gatewayctl over the bus, lists them, prints metrics, and stops everything.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

install_deps
log "Building"
build build

WORK=$(mktemp -d /tmp/gatewayd-demo.XXXXXX)
PIDS=()
cleanup() {
        for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
        for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
        rm -rf "$WORK"
}
trap cleanup EXIT

log "Starting a private Redis on $WORK/redis.sock"
redis-server --port 0 --unixsocket "$WORK/redis.sock" --unixsocketperm 700 --save '' \
        --appendonly no --dir "$WORK" >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
        redis-cli -s "$WORK/redis.sock" ping >/dev/null 2>&1 && break
        sleep 0.05
done

log "Starting a DNS responder for the FQDN check (app.example.org -> 203.0.113.10)"
$PY "$ROOT/tests/e2e/tools/dns_server.py" --port-file "$WORK/dns.port" \
        app.example.org=203.0.113.10 >"$WORK/dns.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$WORK/dns.port" ] && break; sleep 0.05; done
DNS_PORT=$(cat "$WORK/dns.port")

cat >"$WORK/gatewayd.conf" <<CONF
[gateway]
enabled = yes
domain = gw1.example.net
public_config = file
public_ipv4 = 203.0.113.10/24
gateway_ipv4 = 203.0.113.1
public_ipv6 = 2001:db8:1::10/64
gateway_ipv6 = 2001:db8:1::1

[names]
; the demo has no chain: trust the caller (a node uses "bus")
validation = off

[dns]
resolver = 127.0.0.1:$DNS_PORT
CONF

log "Starting gatewayd"
"$ROOT/build/daemon/gatewayd" --broker "unix://$WORK/redis.sock" --root "$WORK/state" \
        --config "$WORK/gatewayd.conf" --log-target stderr 2>"$WORK/gatewayd.log" &
PIDS+=($!)
CTL=("$ROOT/build/cli/gatewayctl" --broker "unix://$WORK/redis.sock")
for _ in $(seq 100); do "${CTL[@]}" --timeout 1 status >/dev/null 2>&1 && break; sleep 0.1; done

run() { printf '\n$ gatewayctl %s\n' "$*"; "${CTL[@]}" "$@"; }
run status
run deploy name 37-1976-myapp myapp 'http://[300:1:2::3]:9000'
run deploy fqdn 37-1977-site app.example.org 'http://[300:1:2::4]:8080' 'http://[300:1:2::5]:8080'
run deploy name 38-2000-other myapp 'http://[300:1:2::6]:80' || true
run list
run show 37-1976-myapp
run metrics
run delete 37-1977-site
run list

log "Daemon log"
cat "$WORK/gatewayd.log"
log "Demo finished; stopping everything"
