#!/bin/sh
# tests/container/runtime_chroot.sh - the image's runtime stage, proved
# without an image: the steps deploy/container/Containerfile runs in it
# (install-runtime.sh with runtime-packages.txt, on Debian 12 minbase made
# by debootstrap; then the build's `make install` into it) give a root in
# which ringmaster, started as the pod starts it, serves every pool of the
# Kubernetes INI (deploy/kubernetes/ringmaster.ini).
#
# As in the pod: ringmaster is PID 1 of a PID namespace, user 10001 (the
# image's), no capabilities, no_new_privs; the root is read-only, /run and
# /tmp are fresh mode-0777/1777 tmpfs (emptyDir), /etc/ringmaster is the
# INI, read-only (the ConfigMap). Only the listen address differs: a free
# port on 127.0.0.1 instead of 0.0.0.0:8080. curl from outside asks for
# readiness, an echo, a digits and an OCR inference and /metrics; then
# SIGTERM, as the kubelet sends it: readiness 503 at once, requests still
# served during the INI's drain_delay, then exit 0.
#
# The minbase + runtime packages root is kept between runs (debootstrap and
# the packages take about 2.5 minutes, the run itself about 15 s, 10 of
# them the INI's drain_delay) in
# $RM_ROOTFS_CACHE (default ~/.cache/ringmaster-tests), under a name made of
# the sha256 of install-runtime.sh and runtime-packages.txt: a change to
# either makes a new one; one older than 7 days is made again (security
# updates). RM_ROOTFS_FRESH=1 ignores the kept one.
#
# Needs root (chroot, mounts, namespaces), debootstrap (setup.sh --check
# installs it) and the Debian mirror of /etc/apt. Exit 0 pass, 1 fail,
# 77 skip (no debootstrap, or not root), 99 error.
set -u
srcdir=${srcdir:-.}
src=$(cd "$srcdir" && pwd)
build=$(pwd)
say() { echo "runtime_chroot: $*"; }
if ! command -v debootstrap >/dev/null 2>&1; then
    say "debootstrap not found: skipping (setup.sh --check installs it)"; exit 77
fi
if [ "$(id -u)" -ne 0 ] || ! unshare --mount --pid --fork true 2>/dev/null; then
    say "needs root (chroot, mounts, a PID namespace): skipping"; exit 77
fi
for f in ringmaster ringmasterctl; do
    [ -x "$build/$f" ] || { say "$build/$f is not built"; exit 99; }
done
now() { date +%s; }
t_start=$(now)

# ---------------------------------------------------------------- the kept root
cdir=$src/deploy/container
key=$(cat "$cdir/install-runtime.sh" "$cdir/runtime-packages.txt" | sha256sum | cut -c1-16)
cache=${RM_ROOTFS_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/ringmaster-tests}
rootfs=$cache/bookworm-runtime-$key
mkdir -p "$cache" || exit 99
# The apt mirror this machine uses (debian.sources or sources.list).
mirror=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | grep -v security | head -n1)
[ -n "$mirror" ] || mirror=$(sed -n 's/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\) bookworm .*/\2/p' /etc/apt/sources.list 2>/dev/null | head -n1)
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
(
    flock 9
    if [ -f "$rootfs/.complete" ] && [ "${RM_ROOTFS_FRESH:-0}" != 1 ] &&
       [ -z "$(find "$rootfs/.complete" -mtime +7)" ]; then
        say "kept runtime root: $rootfs"
        exit 0
    fi
    rm -rf "$rootfs" "$rootfs.new"
    t0=$(now)
    say "debootstrap --variant=minbase bookworm ($mirror)"
    if ! debootstrap --variant=minbase bookworm "$rootfs.new" "$mirror" >"$cache/debootstrap.log" 2>&1; then
        tail -n 20 "$cache/debootstrap.log"; say "debootstrap failed"; exit 99
    fi
    t1=$(now)
    mkdir -p "$rootfs.new/tmp/rm-install"
    cp "$cdir/install-runtime.sh" "$cdir/runtime-packages.txt" "$rootfs.new/tmp/rm-install/"
    # The Containerfile's RUN, word for word, in the new root.
    if ! unshare --mount --fork sh -c 'mount -t proc proc "$1/proc" &&
            chroot "$1" sh -c "sh /tmp/rm-install/install-runtime.sh /tmp/rm-install/runtime-packages.txt && rm -rf /tmp/rm-install"' \
            sh "$rootfs.new" >"$cache/install-runtime.log" 2>&1; then
        tail -n 30 "$cache/install-runtime.log"; say "install-runtime.sh failed"; exit 1
    fi
    t2=$(now)
    touch "$rootfs.new/.complete"
    mv "$rootfs.new" "$rootfs"
    say "made $rootfs: debootstrap $((t1 - t0)) s, install-runtime.sh $((t2 - t1)) s, $(du -sm "$rootfs" | cut -f1) MiB"
) 9>"$cache/lock" || exit $?
t_root=$(now)

# ---------------------------------------------------------------- this run
tmp=$(mktemp -d) || exit 99
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/upper" "$tmp/ovl" "$tmp/root" "$tmp/etc" "$tmp/dest"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sed -e "s/^listen = .*/listen = 127.0.0.1:$port/" "$src/deploy/kubernetes/ringmaster.ini" >"$tmp/etc/ringmaster.ini"
grep -q "^listen = 127.0.0.1:$port\$" "$tmp/etc/ringmaster.ini" || { say "no listen line replaced"; exit 99; }
# The build stage's `make install` (prefix /usr, sysconfdir /etc), from this build.
if ! make -C "$build" install DESTDIR="$tmp/dest" prefix=/usr sysconfdir=/etc >"$tmp/install.log" 2>&1; then
    tail -n 20 "$tmp/install.log"; say "make install failed"; exit 1
fi
rm -rf "$tmp/dest/usr/include"
find "$tmp/dest" -depth -type d -path '*/lib/systemd' -exec rm -rf {} +
[ -x "$tmp/dest/usr/bin/ringmaster" ] && [ -f "$tmp/dest/usr/share/ringmaster/examples/digits/digits.py" ] ||
    { say "make install put no /usr/bin/ringmaster or digits model in DESTDIR"; find "$tmp/dest" | head -30; exit 1; }

# The pod: a mount namespace (every mount below goes with it), the kept
# root as the lower layer of an overlay, ringmaster installed on top, the
# result read-only.
cat >"$tmp/pod.sh" <<'EOF'
set -eu
tmp=$1 rootfs=$2
mount --make-rprivate /
mount -t overlay overlay -o "lowerdir=$rootfs,upperdir=$tmp/upper,workdir=$tmp/ovl" "$tmp/root"
cp -a "$tmp/dest/." "$tmp/root/"
# The Containerfile's last RUN: the binary starts in the runtime root.
chroot "$tmp/root" /usr/bin/ringmaster -V
mount -o remount,ro "$tmp/root"
mount -t tmpfs -o mode=0777,size=1m run "$tmp/root/run"
mount -t tmpfs -o mode=1777,size=64m tmp "$tmp/root/tmp"
mount --bind "$tmp/etc" "$tmp/root/etc/ringmaster"
mount -o remount,bind,ro "$tmp/root/etc/ringmaster"
if touch "$tmp/root/usr/rw-check" 2>/dev/null; then echo "the root is writable"; exit 1; fi
# The container's user, capabilities and privileges; ringmaster as PID 1.
exec unshare --pid --fork sh -c 'mount -t proc proc "$1/proc" && exec chroot "$1" setpriv --reuid=10001 --regid=10001 \
    --clear-groups --inh-caps=-all --bounding-set=-all --no-new-privs \
    /usr/bin/ringmaster -c /etc/ringmaster/ringmaster.ini' sh "$tmp/root"
EOF
unshare --mount --fork sh "$tmp/pod.sh" "$tmp" "$rootfs" >"$tmp/pod.log" 2>&1 &
podpid=$!
# Every process under the pod process (ours), deepest last.
descendants() {
    for c in $(cat "/proc/$1/task/"*/children 2>/dev/null); do
        echo "$c"; descendants "$c"
    done
}
fail() {
    say "FAIL: $*"
    echo "----- the pod's output -----"; cat "$tmp/pod.log"; echo "-----"
    # PID 1 of the pod's namespace first: the kernel then kills the rest of it.
    for p in ${master:-} $(descendants "$podpid"); do kill -KILL "$p" 2>/dev/null; done
    wait "$podpid" 2>/dev/null
    exit 1
}
# ringmaster: PID 1 of its namespace (NSpid ends in 1), titled master, a
# descendant of the pod process.
find_master() {
    for s in /proc/[0-9]*/status; do
        pid=${s#/proc/}; pid=${pid%/status}
        grep -q "^NSpid:.*[[:space:]]1\$" "$s" 2>/dev/null || continue
        case "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" in
            "ringmaster: master "*) ;;
            *) continue ;;
        esac
        p=$pid
        for _ in 1 2 3 4 5; do
            p=$(awk '/^PPid:/ {print $2}' "/proc/$p/status" 2>/dev/null)
            [ -n "$p" ] || break
            if [ "$p" = "$podpid" ]; then echo "$pid"; return 0; fi
        done
    done
    return 1
}
url=http://127.0.0.1:$port
deadline=$(($(now) + 120))
until [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url/v2/health/ready")" = 200 ]; do
    [ -d "/proc/$podpid" ] && [ "$(awk '{print $3}' "/proc/$podpid/stat" 2>/dev/null)" != Z ] || fail "the pod exited before it was ready"
    [ "$(now)" -lt "$deadline" ] || fail "not ready within 120 s"
    ! grep -q "pool marked failed" "$tmp/pod.log" || fail "a pool failed to load in the runtime root"
    sleep 0.2
done
t_ready=$(now)
master=$(find_master) || fail "no ringmaster master as PID 1 in the chroot"
uid=$(awk '/^Uid:/ {print $2}' "/proc/$master/status")
[ "$uid" = 10001 ] || fail "ringmaster runs as uid $uid, not 10001"
grep -q "^CapEff:[[:space:]]*0*\$" "/proc/$master/status" || fail "ringmaster has capabilities: $(grep CapEff "/proc/$master/status")"
say "ready in $((t_ready - t_root)) s: ringmaster pid $master (1 in its namespace), uid $uid, no capabilities, read-only root"
# What the pod's processes take (docs/kubernetes.md sizes the requests on it).
pss=0 rss=0 n=0
for p in $master $(descendants "$master"); do
    v=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null) && [ -n "$v" ] && pss=$((pss + v))
    v=$(awk '/^Rss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null) && [ -n "$v" ] && rss=$((rss + v)) && n=$((n + 1))
done
say "memory once ready: $n processes, PSS $((pss / 1024)) MiB in all (RSS $((rss / 1024)) MiB)"

r=$(curl -s --max-time 10 -d 'hello from the runtime root' "$url/v2/models/echo/infer")
[ "$r" = "hello from the runtime root" ] || fail "echo answered: $r"
say "echo: $r"
digits='{"inputs":[{"name":"image","datatype":"FP32","shape":[1,64],"data":[0,0,0,12,13,5,0,0,0,0,0,11,16,9,0,0,0,0,3,15,16,6,0,0,0,7,15,16,16,2,0,0,0,0,1,16,16,3,0,0,0,0,1,16,16,6,0,0,0,0,1,16,16,6,0,0,0,0,0,11,16,10,0,0]}]}'
r=$(curl -s --max-time 20 -H 'Content-Type: application/json' -d "$digits" "$url/v2/models/digits/infer")
echo "$r" | grep -q '"name": "label".*"data": \[1\]' || fail "digits answered: $r"
say "digits (scikit-learn in the runtime root): label 1"
if [ -x "$build/tests/gen_text_image" ]; then
    "$build/tests/gen_text_image" "$tmp/text.png" "Hello from ringmaster" || fail "gen_text_image"
    r=$(curl -s --max-time 30 --data-binary @"$tmp/text.png" -H 'Content-Type: image/png' "$url/v2/models/ocr/infer")
    echo "$r" | grep -q '"text":"Hello from ringmaster"' || fail "ocr answered: $r"
    say "ocr (tesseract-ocr-eng in the runtime root): $r"
else
    r=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$url/v2/models/ocr/ready")
    [ "$r" = 200 ] || fail "ocr pool not ready: $r"
    say "ocr: ready (no tests/gen_text_image in this build to make an image)"
fi
m=$(curl -s --max-time 5 "$url/metrics")
echo "$m" | grep -q '^ringmaster_queue_depth{pool="ocr"}' || fail "/metrics has no ringmaster_queue_depth (the ScaledObject's query)"

# The pod deleted: readiness 503 at once, requests still served for
# drain_delay (the INI's), then the graceful stop.
kill -TERM "$master"
t_term=$(now)
drain=$(sed -n 's/^drain_delay = \([0-9]*\)s$/\1/p' "$tmp/etc/ringmaster.ini")
[ -n "$drain" ] && [ "$drain" -ge 2 ] || fail "the INI's drain_delay is not a number of seconds >= 2"
# The master takes the signal on its next loop turn: poll, 2 s at most
# (20 tries 0.1 s apart).
tries=0
while :; do
    r=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url/v2/health/ready")
    [ "$r" = 503 ] && break
    tries=$((tries + 1))
    [ "$tries" -lt 20 ] || fail "readiness 2 s after SIGTERM: $r, not 503"
    sleep 0.1
done
served=0
while [ $(($(now) - t_term)) -lt $((drain - 1)) ]; do
    r=$(curl -s --max-time 5 -d drain "$url/v2/models/echo/infer")
    [ "$r" = drain ] || fail "a request $(($(now) - t_term)) s into the drain answered: $r"
    served=$((served + 1))
    sleep 0.2
done
say "drain: readiness 503 at once, $served requests served in the first $((drain - 1)) s of drain_delay ${drain}s"
wait "$podpid"
rc=$?
[ "$rc" -eq 0 ] || fail "exit status $rc after SIGTERM (want 0)"
grep -q "master: notice: stopped" "$tmp/pod.log" || fail "no 'stopped' in the log"
say "SIGTERM: exit 0 after $(($(now) - t_term)) s"
say "times: root $((t_root - t_start)) s, start to ready $((t_ready - t_root)) s, all $(($(now) - t_start)) s"
exit 0
