#!/bin/bash
# The self-contained demo: builds gatewayd, starts a private Redis, builds a
# grid node from network namespaces with two real Yggdrasil routers and an
# HTTP and an HTTPS workload on the overlay, plus a real ACME server (pebble)
# and a real recursive resolver (unbound) holding the farmer's DNS records
# (scripts/demo_node.py, reusing tests/e2e/node.py and acme_env.py; see
# docs/topology.md, docs/dns-delegation.md), runs gatewayd in the node's
# namespace where it makes the gateway namespace and serves :443/:80 and its
# _acme-challenge responder on :53 inside it, deploys a name proxy, an FQDN
# proxy and a TLS-passthrough proxy with gatewayctl over the bus, waits for
# the certificates gatewayd obtains (HTTP-01 for the FQDN, a wildcard by
# DNS-01 for the names), sends real requests through the gateway's public
# address to the Yggdrasil backends, verified against pebble's root, prints
# the metrics (bus and Prometheus), deletes a workload, and stops everything.
# Needs root (namespaces, veth, tun).
#
# Everything it makes is named gwdemo-* (the tests use gwt-*; directories:
# /tmp/gatewayd-demo.*, /var/lib/unbound/gatewayd-demo.*), is removed by
# name or killed by PID at exit, also on failure or Ctrl-C, and is removed at
# start if a killed run left it behind: the demo can be run again and again.
#
# Usage: scripts/demo.sh [--keep | --stop]
#   --keep  at the end, leave the node running (Redis, the namespaces,
#           yggdrasil, pebble, unbound, the workloads and gatewayd with its
#           two remaining workloads) and print how to use it; a failed run
#           still stops everything.
#   --stop  stop what a --keep run left running, by PID and by name, as the
#           cleanup at exit does. A plain run does the same first.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

KEEP=
case ${1-} in
"") ;;
--keep) KEEP=1 ;;
--stop) ;;
-h | --help)
        sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
        exit 0
        ;;
*)
        echo "usage: $0 [--keep | --stop]" >&2
        exit 2
        ;;
esac
[ $# -le 1 ] || {
        echo "usage: $0 [--keep | --stop]" >&2
        exit 2
}

# Names (the host-side veth ends live in the node namespace; at most 15 chars).
NODE_NS=gwdemo-node
WL_NS=gwdemo-wl
GW_NS=gwdemo-gw
PUB_LINK=gwdemo-pub
YGG_LINK=gwdemo-ygg
NETNS_DIR=/run/netns
LOCK=/run/gatewayd-demo.lock
RUNPIDS=/run/gatewayd-demo.pids # "PID MARK" for each process of the current run
KEPT_INFO=/run/gatewayd-demo.kept # how to use the node a --keep run left running

WORK=
UNBOUND_DIR= # unbound's files: below /var/lib/unbound, the only place its AppArmor profile allows
PIDS=() # redis (killed last)
GWD_PID=
NODE_HELPER=
NODE_OUT=
NODE_IN=
YGG_A_PID='' YGG_B_PID='' HTTP_PID='' HTTP_TOKEN='' TLS_PID='' TLS_PORT='' TLS_CA=''
UNBOUND_PID='' PEBBLE_PID='' UNBOUND_LOG='' PEBBLE_LOG='' RESOLVER='' ZONE_FILE='' FQDN_ZONE_FILE=''
ACME_DIRECTORY='' ACME_CA='' PEBBLE_ROOT=''
DOMAIN=gw1.example.net
PUBLIC_IP=203.0.113.10
PUBLIC_IP6=2001:db8:1::10
TLS_NAME=secure.$DOMAIN
FQDN=app.example.org

FAILED=
die() {
        err "demo failed: $*"
        FAILED=1
        exit 1
}

# running PID: the process exists and is not a zombie (exited, not yet
# reaped: init may take seconds to reap the orphans of a killed run).
running() {
        local st
        st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
        st=${st##*) }
        [ "${st%% *}" != Z ]
}

# stop_pid PID SECONDS: SIGTERM, then SIGKILL after SECONDS; reaps our children.
stop_pid() {
        local pid=$1 end=$((SECONDS + $2))
        [ -n "$pid" ] || return 0
        kill "$pid" 2>/dev/null || return 0
        while running "$pid" && [ "$SECONDS" -lt "$end" ]; do sleep 0.05; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
}

# remember PID MARK: note a process we started, with a string of its command
# line, so that a run killed before its trap could run (SIGKILL) is cleaned
# up by the next one.
remember() { echo "$1 $2" >>"$RUNPIDS"; }

# The processes a killed run or a --keep run left, newest first: by PID,
# and only while their command line still carries the mark (a PID may have
# been reused); then their directories. A --keep run wrote the file in the
# order of the cleanup below: gatewayd, the node helper (which takes the
# node down), the node's processes, Redis.
reap_leftovers() {
        local pid mark why="a demo run that was killed"
        [ -s "$KEPT_INFO" ] && why="./scripts/demo.sh --keep"
        if [ -s "$RUNPIDS" ]; then
                while read -r pid mark; do
                        [ -r "/proc/$pid/cmdline" ] || continue
                        if tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$mark"; then
                                echo "Stopping PID $pid ($(cat "/proc/$pid/comm" 2>/dev/null)), left by $why"
                                stop_pid "$pid" 20
                        fi
                done < <(tac "$RUNPIDS")
                while read -r pid mark; do
                        case $mark in /tmp/gatewayd-demo.* | /var/lib/unbound/gatewayd-demo.*) rm -rf "$mark" ;; esac
                done <"$RUNPIDS"
        fi
        rm -f "$RUNPIDS" "$KEPT_INFO"
}

# Namespaces by name (the gateway's host-side links are in the node's and go
# with it); then whether anything named gwdemo-* is left: prints it, fails.
remove_namespaces() {
        local ns
        for ns in "$GW_NS" "$WL_NS" "$NODE_NS"; do
                [ -e "$NETNS_DIR/$ns" ] && ip netns del "$ns" 2>/dev/null
        done
        return 0
}
check_nothing_left() {
        local left
        left=$( (ip netns list | grep -E '^gwdemo-'; ip -o link show | grep -oE ' gwdemo-[^:@ ]*') || true)
        if [ -n "$left" ]; then
                printf 'warning: left behind: %s\n' "$(echo $left)" >&2
                return 1
        fi
}

cleanup() {
        local rc=$?
        trap '' INT TERM HUP
        set +e
        if [ "$rc" -ne 0 ] && [ -z "$FAILED" ]; then
                case $rc in
                129 | 130 | 143) err "demo interrupted" ;;
                *) err "demo failed (exit status $rc)" ;;
                esac
        fi
        [ -n "$WORK" ] || exit "$rc"
        if [ "$rc" -ne 0 ] && [ -s "$WORK/gatewayd.log" ]; then
                log "gatewayd log (last lines)"
                tail -n 20 "$WORK/gatewayd.log"
        fi
        log "Stopping everything"
        # gatewayd first: it would repair the gateway namespace removed below.
        stop_pid "$GWD_PID" 5
        # The node helper kills pebble, unbound, yggdrasil A/B and the HTTP(S)
        # servers by PID and removes the gateway's links and the namespaces
        # by name...
        stop_pid "$NODE_HELPER" 20
        # ...and should it have died first, the same by hand.
        for pid in $PEBBLE_PID $UNBOUND_PID $TLS_PID $HTTP_PID $YGG_B_PID $YGG_A_PID; do
                stop_pid "$pid" 5
        done
        remove_namespaces
        for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[i]}" 5; done
        if check_nothing_left; then
                echo "Stopped every process the demo started; no gwdemo-* namespace or link is left."
        else
                rc=1
        fi
        rm -rf "$WORK"
        [ -z "$UNBOUND_DIR" ] || rm -rf "$UNBOUND_DIR"
        rm -f "$RUNPIDS"
        exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

[ "$(id -u)" = 0 ] || die "needs root (network namespaces, veth, tun)"
exec 9>"$LOCK"
flock -n 9 || die "another demo is running (lock $LOCK)"
if [ "${1-}" = --stop ]; then
        [ -s "$RUNPIDS" ] || [ -n "$(ip netns list | grep -E '^gwdemo-')" ] ||
                echo "No demo node is running."
        reap_leftovers
        remove_namespaces
        check_nothing_left || exit 1
        echo "No demo process, no gwdemo-* namespace or link is left."
        exit 0
fi
reap_leftovers

install_deps
log "Building"
build build

WORK=$(mktemp -d /tmp/gatewayd-demo.XXXXXX)
remember - "$WORK" # the directory alone
UNBOUND_DIR=$(mktemp -d /var/lib/unbound/gatewayd-demo.XXXXXX)
remember - "$UNBOUND_DIR"

# node_expect WORD: read the node helper's lines up to WORD (VAR lines set
# shell variables); its own steps are bounded, this read is too. (No 2>
# redirection on read: a trap that runs during it would inherit it.)
node_expect() {
        local word=$1 k v
        while true; do
                IFS=' ' read -r -t 40 -u "$NODE_OUT" k v ||
                        die "the node helper exited or said nothing for 40 s before $word"
                case $k in
                "$word")
                        REPLY=$v
                        return 0
                        ;;
                VAR)
                        [[ ${v%% *} =~ ^[A-Z_]+$ ]] || die "node helper: bad line: $k $v"
                        printf -v "${v%% *}" '%s' "${v#* }"
                        ;;
                ERR) die "node helper: $v" ;;
                *) die "node helper: unexpected line: $k $v" ;;
                esac
        done
}

log "Starting a private Redis on $WORK/redis.sock"
redis-server --port 0 --unixsocket "$WORK/redis.sock" --unixsocketperm 700 --save '' \
        --appendonly no --dir "$WORK" </dev/null >"$WORK/redis.log" 2>&1 9>&- &
PIDS+=($!)
remember $! "$WORK"
end=$((SECONDS + 10))
until redis-cli -s "$WORK/redis.sock" ping >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$end" ] || die "Redis did not answer PING within 10 s"
        sleep 0.05
done

log "Building the grid node: namespaces $NODE_NS (yggdrasil A, unbound, pebble)" \
        "and $WL_NS (yggdrasil B + HTTP and HTTPS workloads)"
# A coprocess: it reports on its stdout (READY, UPLINKS, PATH) and holds the
# node until SIGTERM. Its stderr (errors only) goes to the terminal.
coproc NODE { exec "$PY" "$ROOT/scripts/demo_node.py" --workdir "$WORK/node" \
        --node-ns "$NODE_NS" --wl-ns "$WL_NS" --gw-ns "$GW_NS" \
        --pub-link "$PUB_LINK" --ygg-link "$YGG_LINK" --tls-name "$TLS_NAME" \
        --domain "$DOMAIN" --fqdn "$FQDN" --resolver-dir "$UNBOUND_DIR" 9>&-; }
# (copies: bash drops NODE and NODE_PID when it reaps the coprocess)
NODE_HELPER=$NODE_PID
NODE_OUT=${NODE[0]}
NODE_IN=${NODE[1]}
remember "$NODE_HELPER" "$WORK"
node_expect READY
remember "$YGG_A_PID" "$WORK"
remember "$YGG_B_PID" "$WORK"
remember "$HTTP_PID" "$HTTP_TOKEN"
remember "$TLS_PID" "$HTTP_TOKEN"
remember "$UNBOUND_PID" "$UNBOUND_DIR" # their command lines name their files
remember "$PEBBLE_PID" "$WORK"
echo "yggdrasil A (node):      $NODE_YGG_ADDRESS, routes $NODE_YGG_SUBNET"
echo "yggdrasil B (workload):  $WORKLOAD_ADDRESS, peered to A over veth wl0/node0"
echo "workload HTTP server:    http://[$WORKLOAD_ADDRESS]:$WORKLOAD_PORT/ (bound to B's overlay address only)"
echo "workload HTTPS server:   [$WORKLOAD_ADDRESS]:$TLS_PORT, its own certificate for $TLS_NAME (CA $TLS_CA)"
echo "resolver (unbound):      $RESOLVER in $NODE_NS, recursive: it follows delegations like a public resolver"
echo "ACME server (pebble):    $ACME_DIRECTORY in $NODE_NS (Let's Encrypt on a real node); root $PEBBLE_ROOT"

log "The farmer's DNS records for $DOMAIN (docs/dns-delegation.md), in the parent zone ${DOMAIN#*.}"
# The three records a farmer creates (the zone file unbound serves; a real
# node's are at the farmer's DNS provider), and the FQDN owner's record for
# $FQDN, all at the gateway's public addresses.
grep -E "^([^ ]*\.)?$DOMAIN\. " "$ZONE_FILE"
grep -E "^$FQDN\. " "$FQDN_ZONE_FILE"

cat >"$WORK/gatewayd.conf" <<CONF
[gateway]
enabled = yes
domain = $DOMAIN
public_config = file
public_ipv4 = $PUBLIC_IP/24
gateway_ipv4 = 203.0.113.1
public_ipv6 = 2001:db8:1::10/64
gateway_ipv6 = 2001:db8:1::1

[names]
; the demo has no chain: trust the caller (a node uses "bus")
validation = off

[dns]
; the node's resolver (unbound in $NODE_NS): the FQDN check and the ACME
; server's name
resolver = $RESOLVER
; gatewayd's own _acme-challenge responder, on the gateway's public addresses
listen_port = 53

[acme]
; pebble (a real node leaves directory at Let's Encrypt and ca_file empty)
directory = $ACME_DIRECTORY
ca_file = $ACME_CA
email = farmer@example.net

[namespace]
; the gateway namespace gatewayd makes and keeps: a veth to the node for the
; public side, a veth for the overlay, an address from yggdrasil A's /64
name = $GW_NS
netns_dir = $NETNS_DIR
public_link = veth:$PUB_LINK
ygg_link = veth:$YGG_LINK
ygg_address = $GW_YGG_ADDRESS
ygg_router = $GW_YGG_ROUTER

[proxy]
; inside the gateway namespace: every address of it, both families
address = ::
https_port = 443
http_port = 80

[metrics]
; Prometheus text, in the daemon's (the node's) namespace
listen = 127.0.0.1:8082
CONF
log "gatewayd configuration ($WORK/gatewayd.conf)"
cat "$WORK/gatewayd.conf"

log "Starting gatewayd in $NODE_NS (nsenter --net=$NETNS_DIR/$NODE_NS)"
nsenter --net="$NETNS_DIR/$NODE_NS" "$ROOT/build/daemon/gatewayd" --broker "unix://$WORK/redis.sock" \
        --root "$WORK/state" --config "$WORK/gatewayd.conf" --log-target stderr \
        </dev/null >/dev/null 2>"$WORK/gatewayd.log" 9>&- &
GWD_PID=$! # nsenter execs: this is gatewayd's PID
remember "$GWD_PID" "$WORK"
CTL=("$ROOT/build/cli/gatewayctl" --broker "unix://$WORK/redis.sock")
end=$((SECONDS + 15))
until "${CTL[@]}" --timeout 1 status >/dev/null 2>&1; do
        kill -0 "$GWD_PID" 2>/dev/null || die "gatewayd exited"
        [ "$SECONDS" -lt "$end" ] || die "gatewayd did not answer on the bus within 15 s"
        sleep 0.05
done
end=$((SECONDS + 15))
until grep -q "Gateway namespace $GW_NS is ready" "$WORK/gatewayd.log"; do
        kill -0 "$GWD_PID" 2>/dev/null || die "gatewayd exited"
        [ "$SECONDS" -lt "$end" ] ||
                die "gateway namespace $GW_NS not ready within 15 s: $(grep -h 'not ready' "$WORK/gatewayd.log" | tail -n 1)"
        sleep 0.1
done
# The node's side of the veths gatewayd made: the "upstream router" and the
# overlay router (GridNode.configure_uplinks()).
node_expect UPLINKS

log "The gateway namespace $GW_NS, made by gatewayd"
show() { printf '\n$ %s\n' "$*"; "$@"; }
in_node() { nsenter --net="$NETNS_DIR/$NODE_NS" "$@"; }
show_node() { printf '\n$ %s\n' "$*"; in_node "$@"; }
show ip -n "$GW_NS" -br addr
show ip -n "$GW_NS" route
show ip -n "$GW_NS" -6 route

log "The delegation, checked as docs/dns-delegation.md tells the farmer (dig in $NODE_NS)"
# 1. gatewayd's responder answers for _acme-challenge.$DOMAIN itself (aa) on the public
# addresses; retried briefly: the host side of the public link was addressed just now.
# 2. The resolver follows the NS record of the parent zone to it, as Let's Encrypt's will.
CHALLENGE=_acme-challenge.$DOMAIN
DIG=(dig +norecurse +time=1 +tries=1 "@$PUBLIC_IP" SOA "$CHALLENGE")
printf '\n$ %s\n' "${DIG[*]}"
end=$((SECONDS + 10))
until out=$(in_node "${DIG[@]}") && grep -q 'status: NOERROR' <<<"$out"; do
        [ "$SECONDS" -lt "$end" ] || die "gatewayd's responder does not answer on $PUBLIC_IP:53: $out"
        sleep 0.2
done
grep -E '^;; (->>HEADER|flags)' <<<"$out"
grep -A1 -E '^;; ANSWER SECTION' <<<"$out" | tail -n 1
show_node dig +noall +answer +nottlid "@${RESOLVER%:*}" NS "$CHALLENGE"
DIG=(dig "@${RESOLVER%:*}" TXT "$CHALLENGE")
printf '\n$ %s\n' "${DIG[*]}"
out=$(in_node "${DIG[@]}") || die "dig through the resolver failed: $out"
grep -E '^;; (->>HEADER|flags)' <<<"$out"
grep -A1 -E '^;; AUTHORITY SECTION' <<<"$out" | tail -n 1
grep -q 'status: NOERROR' <<<"$out" || die "the resolver does not reach gatewayd's responder"
echo "(no TXT value while no certificate is being issued: the responder's SOA, through the delegation)"

# What pebble asks from here on (its validations) is shown once the certificates are issued.
PEBBLE_MARK=$(wc -l <"$PEBBLE_LOG")
UNBOUND_MARK=$(wc -l <"$UNBOUND_LOG")

BACKEND="http://[$WORKLOAD_ADDRESS]:$WORKLOAD_PORT"
log "Deploying over the bus (gatewayctl); the backend is the workload on Yggdrasil"
run() { printf '\n$ gatewayctl %s\n' "$*"; "${CTL[@]}" "$@"; }
run status
run deploy name 37-1976-myapp myapp "$BACKEND"
run deploy fqdn 37-1977-site "$FQDN" "$BACKEND"
run deploy name 38-2000-other myapp 'http://[300:1:2::6]:80' || true
run list
run show 37-1976-myapp
run metrics
echo "(gatewayd has started ordering certificates for *.$DOMAIN and $FQDN: shown below)"

log "The backend answers inside $GW_NS"
node_expect PATH # a GET from $GW_NS over the overlay, retried with a deadline
echo "(curl in $GW_NS: $REPLY)"

end=$((SECONDS + 15))
until grep -q "Proxy serving" "$WORK/gatewayd.log"; do
        kill -0 "$GWD_PID" 2>/dev/null || die "gatewayd exited"
        [ "$SECONDS" -lt "$end" ] ||
                die "the proxy is not serving after 15 s: $(grep -h 'Cannot serve' "$WORK/gatewayd.log" | tail -n 1)"
        sleep 0.1
done
grep -h "Proxy serving" "$WORK/gatewayd.log"

log "TLS passthrough: $TLS_NAME through the gateway's public address to the HTTPS workload on Yggdrasil"
run deploy name 37-1978-secure secure "[$WORKLOAD_ADDRESS]:$TLS_PORT" --passthrough
# From the node's namespace, where $PUBLIC_IP is the gateway behind veth $PUB_LINK. curl checks
# the certificate against the workload's own CA: TLS ends at the workload, not at the gateway.
CURL=(curl -sS --max-time 10 --cacert "$TLS_CA" --resolve "$TLS_NAME:443:$PUBLIC_IP" "https://$TLS_NAME/")
printf '\n$ %s\n' "${CURL[*]}"
reply=
for _ in 1 2 3 4 5 6 7 8 9 10; do # the overlay path may still be settling
        reply=$(in_node "${CURL[@]}" 2>&1) && break
        sleep 0.5
done
printf '%s\n' "$reply"
[[ $reply == "tls-ok $HTTP_TOKEN client=${GW_YGG_ADDRESS%/*}" ]] ||
        die "the reply is not the HTTPS workload's answer to the gateway's overlay address"
echo "(the workload saw the gateway's overlay address ${GW_YGG_ADDRESS%/*} as its client)"
printf '\n$ openssl s_client -connect %s:443 -servername %s | openssl x509 -noout -subject -issuer\n' \
        "$PUBLIC_IP" "$TLS_NAME"
in_node openssl s_client -connect "$PUBLIC_IP:443" -servername "$TLS_NAME" </dev/null 2>/dev/null |
        openssl x509 -noout -subject -issuer

log "An unknown name is refused"
# No workload has this name and there is no default route: the gateway closes the connection
# without a certificate. A handshake that succeeds here would be the failure.
printf '\n$ openssl s_client -connect %s:443 -servername unknown.example.org\n' "$PUBLIC_IP"
if in_node openssl s_client -connect "$PUBLIC_IP:443" -servername unknown.example.org </dev/null \
        >"$WORK/unknown.out" 2>&1; then
        die "the gateway completed a handshake for unknown.example.org: $(grep -m1 subject= "$WORK/unknown.out")"
fi
grep -q "no peer certificate available" "$WORK/unknown.out" ||
        die "unexpected answer for unknown.example.org: $(head -n 3 "$WORK/unknown.out")"
echo "ok: refused as it should be: the connection was closed during the handshake, no certificate was sent"

log "Certificates from pebble: $FQDN by HTTP-01 (on :80)," \
        "*.$DOMAIN by DNS-01 (through the delegation to gatewayd's responder)"
# cert_states: "NAME STATE LAST-ERROR" per certificate gatewayd manages.
cert_states() {
        "${CTL[@]}" --json certs | "$PY" -c 'import json, sys
for c in json.load(sys.stdin):
    print(c["Name"], c["State"], " ".join(c["LastError"].split()) or "-")'
}
# wait_certs NAME...: until each is valid; a failed order is not retried for minutes (backoff).
wait_certs() {
        local end=$((SECONDS + 60)) states name line all
        while true; do
                states=$(cert_states) || die "gatewayctl certs failed"
                all=1
                for name in "$@"; do
                        line=$(awk -v n="$name" '$1 == n' <<<"$states")
                        case $(awk '{ print $2 }' <<<"$line") in
                        valid) ;;
                        failed) die "the order for $name failed: ${line#* failed }" ;;
                        *) all= ;;
                        esac
                done
                [ -z "$all" ] || return 0
                [ "$SECONDS" -lt "$end" ] || die "no certificate within 60 s: $states"
                sleep 0.2
        done
}
wait_certs "*.$DOMAIN" "$FQDN"
run certs
# How they were validated: pebble fetched the HTTP-01 token through the gateway's :80 (three
# times, from three "vantage points"), and asked the resolver for the TXT values that only
# gatewayd's responder has (the delegation; identical queries in flight are merged).
printf '\n$ grep -E '\''validate w/ HTTP|Issued'\'' pebble.log | uniq -c       (the CA)\n'
tail -n +$((PEBBLE_MARK + 1)) "$PEBBLE_LOG" | grep -E 'validate w/ HTTP|Issued certificate' |
        sed -E 's/^Pebble [0-9\/]+ [0-9:]+ //' | uniq -c
printf '\n$ grep TXT unbound.log | uniq -c       (the resolver pebble asks)\n'
tail -n +$((UNBOUND_MARK + 1)) "$UNBOUND_LOG" | grep -E ' TXT IN$' | sed -E 's/^.* info: //' | uniq -c
printf '\n$ grep Obtained gatewayd.log\n'
grep -h "Obtained the certificate" "$WORK/gatewayd.log"

log "TLS termination with the trusted certificates (HTTP/1.1 and HTTP/2): myapp.$DOMAIN and $FQDN" \
        "to the HTTP workload on Yggdrasil"
# The names resolve through the farmer's records (myapp.$DOMAIN by the wildcard CNAME); curl
# connects to the same address and verifies the chain against pebble's root: no -k.
show_node dig +noall +answer +nottlid "@${RESOLVER%:*}" "myapp.$DOMAIN"
for host in "myapp.$DOMAIN" "$FQDN"; do
        for addr in "$PUBLIC_IP" "[$PUBLIC_IP6]"; do
                CURL=(curl -sS --max-time 10 --cacert "$PEBBLE_ROOT" --resolve "$host:443:$addr" "https://$host/")
                printf '\n$ %s\n' "${CURL[*]}"
                reply=$(in_node "${CURL[@]}" 2>&1) || die "curl failed: $reply"
                printf '%s\n' "$reply"
                [[ $reply == "gridnode-ok $HTTP_TOKEN client=${GW_YGG_ADDRESS%/*}" ]] ||
                        die "the reply for $host is not the HTTP workload's answer to the gateway"
        done
done
CURL=(curl -sS --max-time 10 --cacert "$PEBBLE_ROOT" --resolve "myapp.$DOMAIN:443:$PUBLIC_IP" -o /dev/null
      -w 'HTTP/%{http_version} %{http_code}\n' "https://myapp.$DOMAIN/")
printf '\n$ %s\n' "${CURL[*]}"
reply=$(in_node "${CURL[@]}" 2>&1) || die "curl failed: $reply"
printf '%s\n' "$reply"
[[ $reply == "HTTP/2 200" ]] || die "curl did not get HTTP/2 (ALPN h2): $reply"
echo "(curl chose HTTP/2 by ALPN; an HTTP/1.1-only client gets HTTP/1.1)"
for host in "myapp.$DOMAIN" "$FQDN"; do
        printf '\n$ openssl s_client -connect %s:443 -servername %s | %s\n' "$PUBLIC_IP" "$host" \
                "openssl x509 -noout -subject -issuer -ext subjectAltName"
        in_node openssl s_client -connect "$PUBLIC_IP:443" -servername "$host" </dev/null 2>/dev/null |
                openssl x509 -noout -subject -issuer -ext subjectAltName
done
CURL=(curl -sS --max-time 10 -o /dev/null -w '%{http_code} %{redirect_url}\n'
        --resolve "myapp.$DOMAIN:80:$PUBLIC_IP" "http://myapp.$DOMAIN/some/path?q=1")
printf '\n$ %s\n' "${CURL[*]}"
in_node "${CURL[@]}"
echo "(plain HTTP is redirected to HTTPS, as zos's Traefik does)"

log "Metrics: bytes through the gateway (bus and Prometheus), certificates, ACME orders, DNS answers"
run metrics
METRICS_RE='^(traefik|gatewayd)_[a-z_]+\{service=|^traefik_tls_certs|^gatewayd_acme_|^gatewayd_dns_answers.*NOERROR'
printf '\n$ curl http://127.0.0.1:8082/metrics | grep -E '\''%s'\''   (in %s)\n' "$METRICS_RE" "$NODE_NS"
in_node curl -sS --max-time 5 http://127.0.0.1:8082/metrics | grep -E "$METRICS_RE"

log "Deleting a workload"
run delete 37-1977-site
run list
run certs
echo "(the FQDN's certificate went with its last workload; the domain's wildcard stays)"

log "Daemon log"
cat "$WORK/gatewayd.log"
log "Demo finished"
[ -n "$KEEP" ] || exit 0

# --keep: the node helper stops watching its stdin (this script is about to
# go) and waits for SIGTERM; the cleanup trap is dropped; reap_leftovers
# (--stop, or the next run) finds everything by PID and name.
log "Keeping the node running (--keep)"
echo KEEP >&"$NODE_IN"
node_expect KEPT
# Newest last: reap_leftovers stops them in the cleanup's order, gatewayd
# first (it would repair what the helper removes), Redis last.
{
        echo "- $WORK"
        echo "- $UNBOUND_DIR"
        echo "${PIDS[0]} $WORK"
        for pid in $YGG_A_PID $YGG_B_PID $PEBBLE_PID; do echo "$pid $WORK"; done
        echo "$HTTP_PID $HTTP_TOKEN"
        echo "$TLS_PID $HTTP_TOKEN"
        echo "$UNBOUND_PID $UNBOUND_DIR"
        echo "$NODE_HELPER $WORK"
        echo "$GWD_PID $WORK"
} >"$RUNPIDS.new"
mv "$RUNPIDS.new" "$RUNPIDS"
BROKER=unix://$WORK/redis.sock
IN_NODE="ip netns exec $NODE_NS"
cat >"$KEPT_INFO" <<INFO
The demo node is running: gatewayd (PID $GWD_PID) in namespace $NODE_NS, serving in
$GW_NS on $PUBLIC_IP and [$PUBLIC_IP6]; Redis, yggdrasil, pebble, unbound and the workload
servers beside it. Files: $WORK (gatewayd.conf, gatewayd.log, state/).

gatewayctl, over the demo's bus:
  $ROOT/build/cli/gatewayctl --broker $BROKER status
  $ROOT/build/cli/gatewayctl --broker $BROKER certs
  $ROOT/build/cli/gatewayctl --broker $BROKER list
  $ROOT/build/cli/gatewayctl --broker $BROKER deploy name 37-1979-more more '$BACKEND'

Requests, from the node's namespace (curl checks pebble's root, or the passthrough
workload's own CA):
  $IN_NODE curl -sS --cacert $PEBBLE_ROOT --resolve myapp.$DOMAIN:443:$PUBLIC_IP https://myapp.$DOMAIN/
  $IN_NODE curl -sS --cacert $TLS_CA --resolve $TLS_NAME:443:$PUBLIC_IP https://$TLS_NAME/
  $IN_NODE curl -sS http://127.0.0.1:8082/healthz
  $IN_NODE curl -sS http://127.0.0.1:8082/metrics
  tail -f $WORK/gatewayd.log

Stop it (a plain $ROOT/scripts/demo.sh stops it first, too):
  $ROOT/scripts/demo.sh --stop
INFO
trap - EXIT
log "The demo node keeps running (these lines are in $KEPT_INFO)"
cat "$KEPT_INFO"
