#!/bin/sh
# prometheus_rules.sh - the alerting rules (etc/prometheus/ringmaster-alerts.yml)
# pass `promtool check rules` and their unit tests
# (tests/prometheus/ringmaster-alerts_test.yml, `promtool test rules`), and
# the Grafana dashboard (etc/grafana/ringmaster-dashboard.json) is valid JSON
# with a query in every panel. The queries run against a live Prometheus in
# tests/fleet/run.sh. Exit 0 pass, 1 fail, 77 skip (no promtool).
set -u
srcdir=${srcdir:-.}
PROMTOOL=${PROMTOOL:-/usr/bin/promtool}
if [ ! -x "$PROMTOOL" ]; then
    echo "prometheus_rules.sh: $PROMTOOL not found: install the Debian package prometheus" >&2
    exit 77
fi
status=0
"$PROMTOOL" check rules "$srcdir/etc/prometheus/ringmaster-alerts.yml" || status=1
# promtool resolves rule_files relative to the test file: run it where the file is.
(cd "$srcdir/tests/prometheus" && "$PROMTOOL" test rules ringmaster-alerts_test.yml) || status=1
if command -v python3 >/dev/null 2>&1; then
    python3 - "$srcdir/etc/grafana/ringmaster-dashboard.json" <<'PY' || status=1
import json, sys
doc = json.load(open(sys.argv[1]))
bad = [p.get("title") for p in doc["panels"] if p.get("type") != "row" and not any(t.get("expr") for t in p.get("targets", []))]
if bad:
    sys.exit("dashboard panels without a query: %r" % bad)
print("dashboard: %d panels, each with a query" % len(doc["panels"]))
PY
fi
exit $status
