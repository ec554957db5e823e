#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Tests of scripts/check-includes.py (the may-use table check).

Usage: test-check-includes.py SOURCE_ROOT. Each case writes a small tree
with its own table into a temporary directory; the last one checks the
real tree with the real docs/ARCHITECTURE.md.
"""

import os
import subprocess
import sys
import tempfile
import textwrap
import unittest

ROOT = os.path.abspath(sys.argv.pop(1) if len(sys.argv) > 1 else ".")
SCRIPT = os.path.join(ROOT, "scripts", "check-includes.py")

TABLE = """\
# Architecture

## Modules and what each may use

| module | files | may use | must not use |
|---|---|---|---|
| common | `common/` | libc | anything |
| proto codec | `proto/codec.*` | common, msgpack-c, pure libc | libuv |
| proto transport | `proto/` | common, proto codec, libuv, libc | — |
| pure | `pure/` | common, pure libc | I/O |
| daemon | `daemon/` | everything | — |

Text after the table.
"""


class CheckIncludes(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = self.tmp.name
        self.write("docs/ARCHITECTURE.md", TABLE)
        self.write("common/macros.h", "#include <errno.h>\n#include <unistd.h>\n")
        self.write("proto/codec.h", '#include <stdint.h>\n#include "common/macros.h"\n')
        self.write("proto/codec.c", '#include "proto/codec.h"\n#include <msgpack.h>\n')
        self.write("proto/bus.h", "#include <uv.h>\n")
        self.write("proto/bus.c", '#include "bus.h"\n#include "proto/codec.h"\n')
        self.write("pure/p.c", '#include <stdio.h>\n#include "common/macros.h"\n')
        self.write("daemon/main.c",
                   '#include "proto/bus.h"\n#include <openssl/ssl.h>\n#include "gw-version.h"\n')

    def tearDown(self):
        self.tmp.cleanup()

    def write(self, rel, text):
        path = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)

    def run_check(self, *extra):
        p = subprocess.run([sys.executable, SCRIPT, "--root", self.root, *extra],
                           cwd=self.root, capture_output=True, text=True)
        return p.returncode, p.stderr

    def assert_refused(self, *messages):
        rc, err = self.run_check()
        self.assertEqual(rc, 1, err)
        for m in messages:
            self.assertIn(m, err)
        return err

    def test_allowed_tree_passes(self):
        out = os.path.join(self.root, "stamp.h")
        dep = os.path.join(self.root, "stamp.d")
        rc, err = self.run_check("--output", out, "--depfile", dep)
        self.assertEqual((rc, err), (0, ""))
        self.assertTrue(os.path.exists(out))
        with open(dep) as f:
            deps = f.read()
        # Every file read and every directory walked, so ninja re-runs the
        # check when a file changes or a new one appears.
        for p in ("docs/ARCHITECTURE.md", "proto/bus.c", "pure/p.c", "daemon"):
            self.assertIn(os.path.join(self.root, p), deps)

    def test_forbidden_module(self):
        self.write("pure/q.c", '#include "proto/bus.h"\n')
        self.assert_refused('pure/q.c:1: error: pure: #include "proto/bus.h": '
                            "pure may not use proto transport")

    def test_file_pattern_beats_directory(self):
        # codec.c is "proto codec", not "proto transport", although it
        # lives in proto/: it may not include the transport's header.
        self.write("proto/codec.c", '#include "proto/codec.h"\n\n#include "proto/bus.h"\n')
        self.assert_refused('proto/codec.c:3: error: proto codec: #include "proto/bus.h": '
                            "proto codec may not use proto transport")

    def test_forbidden_library(self):
        self.write("proto/codec.h", "#include <uv.h>\n")
        self.write("common/log.c", "#include <openssl/ssl.h>\n")
        self.assert_refused("proto/codec.h:1: error: proto codec: #include <uv.h>: "
                            "proto codec may not use libuv",
                            "common/log.c:1: error: common: #include <openssl/ssl.h>: "
                            "common may not use BoringSSL")

    def test_pure_libc(self):
        self.write("pure/clock.c", "#include <stdio.h>\n#include <time.h>\n#include <sys/socket.h>\n")
        err = self.assert_refused("pure/clock.c:2: error: pure: #include <time.h>: pure may use "
                                  "pure libc only", "pure/clock.c:3:")
        self.assertNotIn("pure/clock.c:1:", err)

    def test_unknown_header(self):
        self.write("daemon/z.c", "#include <zlib.h>\n")
        self.assert_refused("daemon/z.c:1: error: daemon: #include <zlib.h>: unknown header")

    def test_missing_quoted_header(self):
        self.write("common/x.c", '#include "uv.h"\n#include "gw-commit.h"\n#include "gw/x.h"\n')
        err = self.assert_refused('common/x.c:1: error: common: #include "uv.h": no such file',
                                  'common/x.c:3: error: common: #include "gw/x.h": no such file')
        self.assertNotIn("common/x.c:2:", err)

    def test_outside_every_module(self):
        self.write("tools/t.h", "\n")
        self.write("common/y.c", '#include "tools/t.h"\n')
        self.assert_refused('#include "tools/t.h": tools/t.h belongs to no module')

    def test_relative_escape_resolved(self):
        self.write("common/z.c", '#include "../daemon/d.h"\n')
        self.write("daemon/d.h", "\n")
        self.assert_refused('common/z.c:1: error: common: #include "../daemon/d.h": '
                            "common may not use daemon")

    def test_comments_and_conditionals(self):
        # Commented-out includes are not includes; conditional ones are.
        self.write("pure/c.c", textwrap.dedent("""\
            /* Formerly:
            #include <uv.h>
            #include "proto/bus.h" */
            // #include <time.h>
            #ifdef NEVER
            #  include <unistd.h>
            #endif
            """))
        err = self.assert_refused("pure/c.c:6: error: pure: #include <unistd.h>")
        self.assertEqual(err.count("error:"), 1, err)

    def test_computed_include(self):
        self.write("common/m.c", "#define H <stdio.h>\n#include H\n")
        self.assert_refused("common/m.c:2: error: common: #include H: a computed include")

    def test_stale_output_removed_on_failure(self):
        out = os.path.join(self.root, "stamp.h")
        self.write("stamp.h", "old\n")
        self.write("pure/q.c", "#include <uv.h>\n")
        rc, _ = self.run_check("--output", out)
        self.assertEqual(rc, 1)
        self.assertFalse(os.path.exists(out))

    def test_table_errors(self):
        for table, message in (
            (TABLE.replace("common, pure libc | I/O", "common, libfoo, pure libc | I/O"),
             "'pure' may use 'libfoo': not a module"),
            (TABLE.replace("## Modules and what each may use", "## Modules"),
             "no '## Modules and what each may use' section"),
            (TABLE.replace("`pure/`", "pure"), "'pure' names no files"),
            (TABLE.replace("`pure/`", "`/pure/`"), "'/pure/' is not `dir/`"),
            (TABLE.replace("common, pure libc | I/O", "common | I/O"),
             "'pure' must say 'libc' or 'pure libc'"),
        ):
            self.write("docs/ARCHITECTURE.md", table)
            rc, err = self.run_check()
            self.assertEqual(rc, 2, err)
            self.assertIn(message, err)

    def test_real_tree(self):
        p = subprocess.run([sys.executable, SCRIPT, "--root", ROOT], capture_output=True, text=True)
        self.assertEqual((p.returncode, p.stderr), (0, ""))


if __name__ == "__main__":
    unittest.main(verbosity=2)
