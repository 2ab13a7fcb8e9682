#!/bin/sh
# tests/k8s/check.sh - deploy/kubernetes renders (`kubectl kustomize`) and
# every object it renders validates against the Kubernetes and KEDA schemas,
# offline (npm: kubernetes-models, @kubernetes-models/keda); the probes, the
# port, the grace period and the volumes agree with the INI in the ConfigMap
# and with deploy/container/Containerfile (tests/k8s/validate.mjs); and the
# checks can fail (validate.mjs --self-test breaks copies on purpose).
#
# The validator's node_modules go to the build folder (tests/k8s/ there):
# `make distcheck` runs this from a read-only source tree. setup.sh --check
# runs `npm ci` there ahead; this runs it when node_modules is missing or
# older than package-lock.json (from npm's cache when it has the packages).
# Exit 0 pass, 1 fail, 77 skip (no kubectl or no node/npm), 99 error.
set -u
srcdir=${srcdir:-.}
src=$(cd "$srcdir" && pwd)
here=$(pwd)/tests/k8s
for tool in kubectl node npm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "check.sh: $tool not found: skipping (setup.sh --check installs it)"
        exit 77
    fi
done
mkdir -p "$here" || exit 99
if [ "$src/tests/k8s" != "$here" ]; then
    cp "$src/tests/k8s/package.json" "$src/tests/k8s/package-lock.json" "$src/tests/k8s/validate.mjs" "$here/" || exit 99
    chmod u+w "$here"/package.json "$here"/package-lock.json "$here"/validate.mjs
fi
if [ ! -d "$here/node_modules/kubernetes-models" ] || [ "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]; then
    echo "check.sh: npm ci in $here"
    (cd "$here" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error) || { echo "check.sh: npm ci failed"; exit 99; }
fi
tmp=$(mktemp -d) || exit 99
trap 'rm -rf "$tmp"' EXIT
if ! kubectl kustomize "$src/deploy/kubernetes" >"$tmp/rendered.yaml" 2>"$tmp/kustomize.err"; then
    echo "FAIL: kubectl kustomize deploy/kubernetes:"; cat "$tmp/kustomize.err"; exit 1
fi
echo "kubectl kustomize deploy/kubernetes: $(grep -c '^kind:' "$tmp/rendered.yaml") objects"
status=0
# A changed INI is a new ConfigMap name, and the pod template names it: the
# rolling update that carries a configuration change (docs/kubernetes.md).
cp -R "$src/deploy/kubernetes" "$tmp/changed" && chmod -R u+w "$tmp/changed" || exit 99
sed -i 's/^workers = 2$/workers = 3/' "$tmp/changed/ringmaster.ini"
kubectl kustomize "$tmp/changed" >"$tmp/changed.yaml" 2>&1 || { echo "FAIL: kustomize of a changed copy"; cat "$tmp/changed.yaml"; exit 1; }
old=$(grep -o 'ringmaster-config-[a-z0-9]*' "$tmp/rendered.yaml" | sort -u | tr '\n' ' ')
new=$(grep -o 'ringmaster-config-[a-z0-9]*' "$tmp/changed.yaml" | sort -u | tr '\n' ' ')
if [ "$(echo $old | wc -w)" -ne 1 ] || [ "$(echo $new | wc -w)" -ne 1 ] || [ "$old" = "$new" ]; then
    echo "FAIL: a changed ringmaster.ini must give one new ConfigMap name everywhere (before: $old, after: $new)"
    status=1
else
    echo "a changed ringmaster.ini: ConfigMap and pod template move from $old to $new (a rolling update)"
fi
node "$here/validate.mjs" "$tmp/rendered.yaml" "$src/deploy/kubernetes/ringmaster.ini" \
    "$src/deploy/container/Containerfile" || status=1
node "$here/validate.mjs" --self-test "$tmp/rendered.yaml" "$src/deploy/kubernetes/ringmaster.ini" \
    "$src/deploy/container/Containerfile" || status=1
exit $status
