#!/bin/sh
# tests/container/image_build.sh - build the image from
# deploy/container/Containerfile without a daemon or a registry, run it,
# and serve from it. Not in `make check` (about 5 minutes on 2 cores, most
# of it the build stage's packages and compile): `make check-image` runs
# it; docs/container.md.
#
#   1. debian:12: no registry is reachable, so the base image is made here:
#      debootstrap --variant=minbase bookworm (the mirror of /etc/apt),
#      imported with buildah (kept between runs, like runtime_chroot.sh's
#      root, in $RM_ROOTFS_CACHE, default ~/.cache/ringmaster-tests).
#   2. buildah build --isolation chroot, vfs storage (a private store in
#      that cache folder), context: the source folder (.containerignore).
#   3. buildah run of the image (its USER 10001, its ENTRYPOINT's binary
#      and INI path) with the Kubernetes INI mounted on /etc/ringmaster, on a
#      free port on 127.0.0.1: readiness, echo, digits; SIGTERM: exit 0.
#
# Needs root, buildah (apt-get install buildah) and debootstrap.
# Exit 0 pass, 1 fail, 77 skip (no buildah or debootstrap, not root), 99 error.
set -u
srcdir=${srcdir:-.}
src=$(cd "$srcdir" && pwd)
say() { echo "image_build: $*"; }
now() { date +%s; }
for tool in buildah debootstrap; do
    command -v "$tool" >/dev/null 2>&1 || { say "$tool not found: skipping (apt-get install $tool)"; exit 77; }
done
[ "$(id -u)" -eq 0 ] || { say "needs root: skipping"; exit 77; }
cache=${RM_ROOTFS_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/ringmaster-tests}
store=$cache/buildah
mkdir -p "$store" || exit 99
B="buildah --storage-driver vfs --root $store/root --runroot $store/runroot"
tag=localhost/ringmaster:test
t0=$(now)

# ---------------------------------------------------------------- 1. debian:12
mirror=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | grep -v security | head -n1)
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
if ! $B inspect --type image docker.io/library/debian:12 >/dev/null 2>&1 ||
   [ -n "$(find "$store/base.stamp" -mtime +7 2>/dev/null)" ] || [ ! -f "$store/base.stamp" ]; then
    rm -rf "$store/minbase"
    say "debootstrap --variant=minbase bookworm ($mirror)"
    debootstrap --variant=minbase bookworm "$store/minbase" "$mirror" >"$store/debootstrap.log" 2>&1 ||
        { tail -n 20 "$store/debootstrap.log"; say "debootstrap failed"; exit 99; }
    t1=$(now)
    tar -C "$store/minbase" -cf "$store/minbase.tar" . && rm -rf "$store/minbase"
    ctr=$($B from scratch) || exit 99
    $B add "$ctr" "$store/minbase.tar" / >/dev/null && $B config --cmd /bin/bash "$ctr" &&
        $B commit -q "$ctr" docker.io/library/debian:12 >/dev/null || { say "import failed"; exit 99; }
    $B rm "$ctr" >/dev/null
    rm -f "$store/minbase.tar"
    touch "$store/base.stamp"
    say "debian:12 made: debootstrap $((t1 - t0)) s, import $(($(now) - t1)) s"
else
    say "debian:12: kept (made $(date -r "$store/base.stamp" -u +%FT%TZ))"
fi
t2=$(now)

# ---------------------------------------------------------------- 2. build
trap '$B rmi -f "$tag" >/dev/null 2>&1; $B rmi --prune >/dev/null 2>&1' EXIT
if ! $B build --isolation chroot --pull=never --layers=false -f "$src/deploy/container/Containerfile" -t "$tag" \
        "$src" >"$store/build.log" 2>&1; then
    tail -n 40 "$store/build.log"; say "FAIL: buildah build"; exit 1
fi
t3=$(now)
size=$($B images --format '{{.Size}}' "$tag" | head -n1)
say "built $tag in $((t3 - t2)) s ($size)"

# ---------------------------------------------------------------- 3. run
tmp=$(mktemp -d) || exit 99
ctr=""
# The image and its layers go (GBs in a vfs store); debian:12 stays.
cleanup() {
    [ -n "$ctr" ] && $B rm "$ctr" >/dev/null 2>&1
    $B rmi -f "$tag" >/dev/null 2>&1
    $B rmi --prune >/dev/null 2>&1
    rm -rf "$tmp"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sed -e "s/^listen = .*/listen = 127.0.0.1:$port/" "$src/deploy/kubernetes/ringmaster.ini" >"$tmp/ringmaster.ini"
chmod 0755 "$tmp"
ctr=$($B from "$tag") || exit 99
entry=$($B inspect --format '{{.Docker.Config.Entrypoint}}' "$tag")
user=$($B inspect --format '{{.Docker.Config.User}}' "$tag")
say "entrypoint $entry, user $user"
[ "$entry" = '[/usr/bin/ringmaster -c /etc/ringmaster/ringmaster.ini]' ] || { say "FAIL: entrypoint $entry"; exit 1; }
stopsignal=$($B inspect --format '{{.Docker.Config.StopSignal}}' "$tag")
ports=$($B inspect --format '{{.Docker.Config.ExposedPorts}}' "$tag")
say "stop signal $stopsignal, exposed $ports"
[ "$stopsignal" = SIGTERM ] || { say "FAIL: stop signal $stopsignal"; exit 1; }
case "$ports" in *8080/tcp*) ;; *) say "FAIL: exposed ports $ports"; exit 1 ;; esac
# The ENTRYPOINT's command, as the image's user (buildah run takes USER).
$B run --isolation chroot -v "$tmp:/etc/ringmaster:ro" "$ctr" -- \
    /usr/bin/ringmaster -c /etc/ringmaster/ringmaster.ini >"$tmp/run.log" 2>&1 &
runpid=$!
# Every process under buildah run (ours), and a failure that ends them.
descendants() {
    for c in $(cat "/proc/$1/task/"*/children 2>/dev/null); do
        echo "$c"; descendants "$c"
    done
}
master=""
fail() {
    say "FAIL: $*"; cat "$tmp/run.log"
    for p in $master $(descendants "$runpid"); do kill -KILL "$p" 2>/dev/null; done
    wait "$runpid"; exit 1
}
url=http://127.0.0.1:$port
deadline=$(($(now) + 120))
until [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url/v2/health/ready")" = 200 ]; do
    state=$(awk '{print $3}' "/proc/$runpid/stat" 2>/dev/null)
    if [ -z "$state" ] || [ "$state" = Z ] || [ "$(now)" -ge "$deadline" ]; then
        fail "not ready"
    fi
    sleep 0.2
done
# The master: the process under buildah run titled so.
for p in $(descendants "$runpid"); do
    case "$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)" in
        "ringmaster: master "*) master=$p; break ;;
    esac
done
[ -n "$master" ] || fail "no ringmaster master under buildah run"
uid=$(awk '/^Uid:/ {print $2}' "/proc/$master/status" 2>/dev/null)
say "ready in $(($(now) - t3)) s; master pid $master, uid $uid"
[ "$uid" = 10001 ] || fail "runs as uid $uid, not 10001"
r=$(curl -s --max-time 10 -d 'hello from the image' "$url/v2/models/echo/infer")
[ "$r" = "hello from the image" ] || fail "echo answered: $r"
digits='{"inputs":[{"name":"image","datatype":"FP32","shape":[1,64],"data":[0,0,0,12,13,5,0,0,0,0,0,11,16,9,0,0,0,0,3,15,16,6,0,0,0,7,15,16,16,2,0,0,0,0,1,16,16,3,0,0,0,0,1,16,16,6,0,0,0,0,1,16,16,6,0,0,0,0,0,11,16,10,0,0]}]}'
r=$(curl -s --max-time 20 -H 'Content-Type: application/json' -d "$digits" "$url/v2/models/digits/infer")
echo "$r" | grep -q '"name": "label".*"data": \[1\]' || fail "digits answered: $r"
say "echo and digits answered from the image"
kill -TERM "$master"
wait "$runpid"
rc=$?
[ "$rc" -eq 0 ] || fail "exit status $rc after SIGTERM"
say "SIGTERM: exit 0; all $(($(now) - t0)) s"
exit 0
