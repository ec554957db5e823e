#!/bin/sh
# Install what bench/run.py needs (Debian packages only) and build the TLS handshake load generator.
set -eu
need=""
command -v nginx   >/dev/null 2>&1 || need="$need nginx"
command -v haproxy >/dev/null 2>&1 || need="$need haproxy"
command -v wrk     >/dev/null 2>&1 || need="$need wrk"
command -v h2load  >/dev/null 2>&1 || need="$need nghttp2-client"
/usr/bin/python3 -c "import h2" 2>/dev/null || need="$need python3-h2"
command -v gcc     >/dev/null 2>&1 || need="$need gcc"
command -v openssl >/dev/null 2>&1 || need="$need openssl"
command -v taskset >/dev/null 2>&1 || need="$need util-linux"
[ -f /usr/include/openssl/ssl.h ] || need="$need libssl-dev"
if [ -n "$need" ]; then
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y $need
fi
# The Debian packages start system-wide nginx/haproxy services; the benchmark starts its own,
# pinned, with generated configs on 127.0.0.1:18xxx, so the system ones are not needed.
dir=$(dirname "$0")
gcc -O2 -Wall -o "$dir/hsload" "$dir/hsload.c" -lssl -lcrypto
echo "bench setup ok: $(nginx -v 2>&1); $(haproxy -v | head -1); $(wrk -v 2>&1 | head -1)"
