#!/usr/bin/env python3
"""Print automake's test totals as one closing line: 'N passed, N failed, N skipped'."""
import re
import sys

path = sys.argv[1] if len(sys.argv) > 1 else "test-suite.log"
counts = {}
try:
    text = open(path, encoding="utf-8", errors="replace").read()
except OSError:
    text = ""
for key in ("TOTAL", "PASS", "SKIP", "XFAIL", "FAIL", "XPASS", "ERROR"):
    m = re.search(r"^# %s: +(\d+)" % key, text, re.M)
    counts[key] = int(m.group(1)) if m else 0
passed = counts["PASS"] + counts["XFAIL"]
failed = counts["FAIL"] + counts["XPASS"] + counts["ERROR"]
print("%d passed, %d failed, %d skipped" % (passed, failed, counts["SKIP"]))
