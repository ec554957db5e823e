#!/usr/bin/python3
"""A tiny authoritative DNS responder for demos and manual tests.

Usage: dns_server.py [--port N] [--port-file F] name=ip [name=ip ...]
Answers A/AAAA for the given names, NXDOMAIN otherwise. Binds 127.0.0.1
(port 0 by default) and writes the chosen port to --port-file.
"""
import argparse
import ipaddress
import socket

from dnslib import AAAA, QTYPE, RCODE, RR, A, DNSRecord


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("records", nargs="*")
    args = ap.parse_args()
    table = {}
    for rec in args.records:
        name, ip = rec.split("=", 1)
        table.setdefault(name.lower().rstrip("."), []).append(ipaddress.ip_address(ip))

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", args.port))
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(str(sock.getsockname()[1]))
        import os
        os.rename(args.port_file + ".tmp", args.port_file)
    while True:
        data, peer = sock.recvfrom(4096)
        try:
            q = DNSRecord.parse(data)
        except Exception:
            continue
        reply = q.reply()
        name = str(q.q.qname).lower().rstrip(".")
        addrs = table.get(name)
        if addrs is None:
            reply.header.rcode = RCODE.NXDOMAIN
        else:
            for ip in addrs:
                if ip.version == 4 and q.q.qtype in (QTYPE.A, QTYPE.ANY):
                    reply.add_answer(RR(q.q.qname, QTYPE.A, rdata=A(str(ip)), ttl=60))
                if ip.version == 6 and q.q.qtype in (QTYPE.AAAA, QTYPE.ANY):
                    reply.add_answer(RR(q.q.qname, QTYPE.AAAA, rdata=AAAA(str(ip)), ttl=60))
        sock.sendto(reply.pack(), peer)


if __name__ == "__main__":
    main()
