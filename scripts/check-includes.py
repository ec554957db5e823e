#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Check every #include in gatewayd's modules against the may-use table.

The table is the one in docs/ARCHITECTURE.md ("Modules and what each may
use"): this script reads it, so the document and what the build enforces
cannot drift apart. meson runs it as a custom_target whose output every
module's library lists as a generated header, so no object compiles while
an include breaks the table (see the top-level meson.build).

Why a check and not per-module include directories: most libraries live in
/usr/include (uv.h, msgpack.h, hiredis/, jansson.h, ares.h, ini.h,
systemd/, and OpenSSL's own openssl/ headers from libssl-dev), which every
compile searches whatever its include path, so a path cannot refuse them;
and several rows share a directory (proto codec and transport, proxy's
parsers and engine), which would need a symlink per header to split.

Rules, per source or header file (tests/ and tools/ are not modules):
  - a quoted include is resolved like the compiler does (the including
    file's directory, then the source root); the file it names must belong
    to the same module or to one the row's "may use" lists;
  - an angle include must be a library the row lists (LIBRARIES below
    says which headers belong to which library) or libc; "pure libc" also
    refuses the headers of I/O, clocks, sockets, signals and threads;
  - a header that is neither in the tree, nor a known library's, nor
    libc's is refused until it is added here: a new library is a decision.
Exit status 0 when everything obeys the table, 1 otherwise (each offence
printed as "file:line: error: ..."), 2 when the table cannot be read.
"""

import argparse
import fnmatch
import os
import re
import sys

TABLE_HEADING = "## Modules and what each may use"

# Library name (as written in the table) -> header patterns: "dir/" is a
# prefix, anything else an fnmatch pattern on the include's path.
LIBRARIES = {
    "libuv": ["uv.h", "uv/"],
    "msgpack-c": ["msgpack.h", "msgpack/"],
    # pkg-config's -I/usr/include/hiredis makes its bare names reachable too.
    "hiredis": ["hiredis/", "hiredis.h", "async.h", "read.h", "sds.h", "alloc.h", "adapters/"],
    # Debian also installs OpenSSL's headers under /usr/include/openssl: a
    # module without boringssl_dep would silently compile against those.
    "BoringSSL": ["openssl/"],
    "jansson": ["jansson.h", "jansson_config.h"],
    "libnl": ["netlink/"],
    "c-ares": ["ares.h", "ares_*.h"],
    "inih": ["ini.h"],
    "libsystemd": ["systemd/"],
    "libnghttp2": ["nghttp2/"],
}

# libc (glibc, POSIX) and the kernel's UAPI headers.
LIBC = [
    "assert.h", "complex.h", "ctype.h", "errno.h", "fenv.h", "float.h", "inttypes.h",
    "iso646.h", "limits.h", "locale.h", "math.h", "setjmp.h", "signal.h", "stdalign.h",
    "stdarg.h", "stdatomic.h", "stdbool.h", "stddef.h", "stdint.h", "stdio.h", "stdlib.h",
    "stdnoreturn.h", "string.h", "tgmath.h", "threads.h", "time.h", "uchar.h", "wchar.h",
    "wctype.h",
    "byteswap.h", "dirent.h", "endian.h", "err.h", "fcntl.h", "fnmatch.h", "getopt.h",
    "glob.h", "grp.h", "ifaddrs.h", "libgen.h", "netdb.h", "paths.h", "poll.h", "pthread.h",
    "pwd.h", "sched.h", "spawn.h", "strings.h", "syslog.h", "termios.h", "unistd.h",
    "arpa/", "net/", "netinet/", "sys/", "linux/",
]

# What "pure libc" refuses: the headers of I/O syscalls, clocks, sockets,
# randomness, signals, processes and threads. <stdio.h> stays (snprintf);
# the check cannot tell snprintf from fopen, review does.
IMPURE = [
    "dirent.h", "fcntl.h", "glob.h", "ifaddrs.h", "netdb.h", "poll.h", "pthread.h", "sched.h",
    "signal.h", "spawn.h", "syslog.h", "termios.h", "threads.h", "time.h", "unistd.h",
    "linux/", "net/if.h", "sys/epoll.h", "sys/eventfd.h", "sys/ioctl.h", "sys/mman.h",
    "sys/mount.h", "sys/random.h", "sys/resource.h", "sys/signalfd.h", "sys/socket.h",
    "sys/stat.h", "sys/time.h", "sys/timerfd.h", "sys/uio.h", "sys/un.h", "sys/vfs.h",
    "sys/wait.h",
]

# Headers meson generates in the build root (configure_file, vcs_tag), such
# as gw-version.h: quoted, without a directory, named gw-*. Anyone's.
GENERATED = ["gw-*.h"]

SOURCE_SUFFIXES = (".c", ".h")


class TableError(Exception):
    pass


def matches(patterns, header):
    for p in patterns:
        if p.endswith("/"):
            if header.startswith(p):
                return True
        elif fnmatch.fnmatchcase(header, p):
            return True
    return False


class Module:
    def __init__(self, name, line):
        self.name = name
        self.line = line
        self.dirs = []  # "proxy/"
        self.globs = []  # "proxy/http1.*"
        self.modules = set()  # names of modules it may use (itself included)
        self.libraries = set()
        self.libc = None  # None, "libc" or "pure libc"


def cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def parse_table(path):
    """The may-use table of docs/ARCHITECTURE.md, as {name: Module}."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    try:
        start = lines.index(TABLE_HEADING)
    except ValueError:
        raise TableError(f"{path}: no '{TABLE_HEADING}' section")
    i = start + 1
    while i < len(lines) and not lines[i].startswith("|"):
        i += 1
    if i + 2 > len(lines):
        raise TableError(f"{path}:{start + 1}: no table under '{TABLE_HEADING}'")
    head = [c.lower() for c in cells(lines[i])]
    try:
        col_name, col_files, col_may = (head.index(k) for k in ("module", "files", "may use"))
    except ValueError:
        raise TableError(f"{path}:{i + 1}: the table needs 'module', 'files' and 'may use' columns")
    rows = []
    i += 2  # header and |---| separator
    while i < len(lines) and lines[i].startswith("|"):
        c = cells(lines[i])
        if len(c) != len(head):
            raise TableError(f"{path}:{i + 1}: {len(c)} cells, the header has {len(head)}")
        rows.append((i + 1, c))
        i += 1

    modules = {}
    for line, c in rows:
        name = c[col_name].replace("`", "").strip()
        if not name or name.lower() in modules:
            raise TableError(f"{path}:{line}: empty or repeated module name '{name}'")
        m = Module(name, line)
        for pat in re.findall(r"`([^`]+)`", c[col_files]):
            if "/" not in pat or pat.startswith("/") or ".." in pat.split("/"):
                raise TableError(f"{path}:{line}: '{pat}' is not `dir/` or `dir/glob` "
                                 "relative to the source root")
            (m.dirs if pat.endswith("/") else m.globs).append(pat)
        if not m.dirs and not m.globs:
            raise TableError(f"{path}:{line}: '{name}' names no files (`dir/` or `dir/glob`)")
        modules[name.lower()] = m

    libraries = {k.lower(): k for k in LIBRARIES}
    for line, c in rows:
        m = modules[c[col_name].replace("`", "").strip().lower()]
        m.modules.add(m.name.lower())
        for tok in (t.strip() for t in c[col_may].split(",")):
            t = tok.lower()
            if t == "everything":
                m.modules |= set(modules)
                m.libraries |= set(LIBRARIES)
                m.libc = "libc"
            elif t in ("libc", "pure libc"):
                m.libc = t
            elif t in modules:
                m.modules.add(t)
            elif t in libraries:
                m.libraries.add(libraries[t])
            else:
                raise TableError(
                    f"{path}:{line}: '{m.name}' may use '{tok}': not a module of the table, "
                    f"a library of {os.path.basename(__file__)} ({', '.join(LIBRARIES)}), "
                    "'libc', 'pure libc' or 'everything'")
        if m.libc is None:
            raise TableError(f"{path}:{line}: '{m.name}' must say 'libc' or 'pure libc'")
    return modules


def owner(modules, rel):
    """The module @rel (a path relative to the root) belongs to, or None.
    A file pattern beats a directory; the deepest directory wins."""
    by_glob = {m.name for m in modules.values() if any(fnmatch.fnmatchcase(rel, g) for g in m.globs)}
    if len(by_glob) > 1:
        raise TableError(f"{rel} matches the files of several modules: {', '.join(sorted(by_glob))}")
    if by_glob:
        return modules[by_glob.pop().lower()]
    best = None
    for m in modules.values():
        for d in m.dirs:
            if rel.startswith(d) and (best is None or len(d) > len(best[0])):
                best = (d, m)
    return best[1] if best else None


INCLUDE_RE = re.compile(r"^[ \t]*#[ \t]*include(?:_next)?[ \t]*(.*)$", re.M)
COMMENT_RE = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)


def includes(text):
    """(line, kind, path) for each #include outside comments; kind is '"',
    '<' or '?' for a computed include."""
    # Blank comments out but keep their newlines, so line numbers hold.
    text = COMMENT_RE.sub(lambda mo: re.sub(r"[^\n]", " ", mo.group(0)), text)
    for mo in INCLUDE_RE.finditer(text):
        line = text.count("\n", 0, mo.start()) + 1
        arg = mo.group(1).strip()
        q = re.match(r'"([^"]+)"|<([^>]+)>', arg)
        if not q:
            yield line, "?", arg
        elif q.group(1) is not None:
            yield line, '"', q.group(1)
        else:
            yield line, "<", q.group(2)


def check(root, modules):
    """(errors, scanned files and directories)."""
    errors = []
    scanned = []
    files = []
    dirs = sorted({d for m in modules.values() for d in m.dirs} |
                  {os.path.dirname(g) + "/" for m in modules.values() for g in m.globs})
    for d in dirs:
        top = os.path.join(root, d)
        if not os.path.isdir(top):
            errors.append(f"the table names {d}, which is not a directory of {root}")
            continue
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            scanned.append(dirpath)
            for fn in sorted(filenames):
                if fn.endswith(SOURCE_SUFFIXES):
                    files.append(os.path.relpath(os.path.join(dirpath, fn), root))

    for rel in sorted(set(files)):
        m = owner(modules, rel)
        shown = os.path.relpath(os.path.join(root, rel))
        if m is None:
            errors.append(f"{shown}:1: error: belongs to no module of the table")
            continue
        path = os.path.join(root, rel)
        scanned.append(path)
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        for line, kind, inc in includes(text):
            where = f"{shown}:{line}: error: {m.name}: #include "
            if kind == "?":
                errors.append(where + f"{inc}: a computed include cannot be checked")
                continue
            shown_inc = f'"{inc}"' if kind == '"' else f"<{inc}>"
            cands = [os.path.join(os.path.dirname(rel), inc)] if kind == '"' else []
            cands.append(inc)
            target = None
            for c in cands:
                c = os.path.normpath(c)
                if not c.startswith("..") and os.path.isfile(os.path.join(root, c)):
                    target = c
                    break
            if target is not None:
                t = owner(modules, target)
                if t is None:
                    errors.append(where + f"{shown_inc}: {target} belongs to no module")
                elif t.name.lower() not in m.modules:
                    errors.append(where + f"{shown_inc}: {m.name} may not use {t.name}")
                continue
            if kind == '"':
                if not matches(GENERATED, inc):
                    errors.append(where + f"{shown_inc}: no such file in the tree "
                                  "(libraries are included with <>)")
                continue
            lib = next((k for k, pats in LIBRARIES.items() if matches(pats, inc)), None)
            if lib is not None:
                if lib not in m.libraries:
                    errors.append(where + f"{shown_inc}: {m.name} may not use {lib}")
            elif matches(LIBC, inc):
                if m.libc == "pure libc" and matches(IMPURE, inc):
                    errors.append(where + f"{shown_inc}: {m.name} may use pure libc only "
                                  "(no I/O, clock, sockets, signals or threads)")
            else:
                errors.append(where + f"{shown_inc}: unknown header: name its library in "
                              "LIBRARIES (or LIBC) of scripts/check-includes.py")
    return errors, scanned


def depfile_escape(p):
    return p.replace("\\", "\\\\").replace(" ", "\\ ").replace("#", "\\#").replace("$", "$$")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", required=True, help="the source root")
    ap.add_argument("--table", help="default: ROOT/docs/ARCHITECTURE.md")
    ap.add_argument("--output", help="stamp header, written only when every include passes")
    ap.add_argument("--depfile", help="ninja depfile naming every file and directory read")
    a = ap.parse_args()
    table = a.table or os.path.join(a.root, "docs", "ARCHITECTURE.md")

    if a.output and os.path.exists(a.output):
        os.unlink(a.output)
    try:
        modules = parse_table(table)
        errors, scanned = check(a.root, modules)
    except TableError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if a.depfile:
        deps = [os.path.abspath(p) for p in [table, __file__] + scanned]
        with open(a.depfile, "w", encoding="utf-8") as f:
            f.write(depfile_escape(a.output or "check-includes") + ": " +
                    " \\\n ".join(depfile_escape(p) for p in deps) + "\n")
    for e in errors:
        print(e, file=sys.stderr)
    if errors:
        print(f"{len(errors)} include(s) break the may-use table of "
              f"{os.path.relpath(table)} ('{TABLE_HEADING[3:]}')", file=sys.stderr)
        return 1
    if a.output:
        with open(a.output, "w", encoding="utf-8") as f:
            f.write("/* Generated by scripts/check-includes.py: every module's #includes obey\n"
                    " * the may-use table of docs/ARCHITECTURE.md. Nothing includes this. */\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
