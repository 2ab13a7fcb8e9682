#!/bin/sh
# setup.sh - set up ringmaster on Debian 12: install the packages it needs
# (only those missing), then autoreconf, configure and make.
#
#   ./setup.sh            build (packages for building and running)
#   ./setup.sh --check    also install the test tools and run the whole test suite
#   ./setup.sh --deps     only install the packages for building (the image's build stage)
#
# Extra configure flags: RM_CONFIGURE_FLAGS="--enable-werror" ./setup.sh
set -eu
cd "$(dirname "$0")"

mode=build
case "${1:-}" in
    --check) mode=check ;;
    --deps) mode=deps ;;
    "") ;;
    *) echo "usage: $0 [--check | --deps]" >&2; exit 2 ;;
esac

BUILD_PKGS="build-essential autoconf automake pkg-config libsystemd-dev libinih-dev
  libcunit1-dev node-llhttp libck-dev libjansson-dev libtesseract-dev
  libleptonica-dev libsodium-dev tesseract-ocr-eng curl libpython3.11-dev python3-numpy python3-sklearn"
TEST_PKGS="python3 prometheus haproxy iproute2 systemd procps spin clang libclang-rt-14-dev debootstrap util-linux"

pkgs=$BUILD_PKGS
[ "$mode" = check ] && pkgs="$pkgs $TEST_PKGS"
# tests/k8s/check.sh needs kubectl (with kustomize), node and npm. Kept when
# already there by any means (this machine's image has them); else Debian's
# nodejs and npm, and kubectl from a configured repository that has it.
if [ "$mode" = check ]; then
    command -v node >/dev/null 2>&1 || pkgs="$pkgs nodejs"
    command -v npm >/dev/null 2>&1 || pkgs="$pkgs npm"
    if ! command -v kubectl >/dev/null 2>&1 && apt-cache policy kubectl 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        pkgs="$pkgs kubectl"
    fi
fi

missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "setup.sh: installing:$missing"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
    # Services from these packages (prometheus, haproxy) must not start: this only wants their
    # binaries, which the tests run with their own configuration.
    # policy-rc.d exit 101 (Debian's invoke-rc.d policy): no package starts its service.
    policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        policy=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
        $SUDO chmod 755 "$policy"
    fi
    rc=0
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing || rc=$?
    [ -z "$policy" ] || $SUDO rm -f "$policy"
    [ "$rc" -eq 0 ] || exit "$rc"
fi
[ "$mode" = deps ] && exit 0

if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
    autoreconf -fi
fi
if [ ! -f Makefile ] || [ configure -nt config.status ]; then
    ./configure ${RM_CONFIGURE_FLAGS:-}
fi
make -j"$(nproc)"

if [ "$mode" = check ]; then
    # The Kubernetes validator's npm packages (tests/k8s/package-lock.json).
    if command -v npm >/dev/null 2>&1; then
        (cd tests/k8s && npm ci --prefer-offline --no-audit --no-fund --loglevel=error)
    fi
    # Serial on purpose: the timing tests must not compete with the crash tests for 2 cores.
    status=0
    make check || status=$?
    python3 tests/summary.py test-suite.log || true
    exit $status
fi
