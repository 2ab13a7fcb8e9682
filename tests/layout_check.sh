#!/bin/sh
# layout_check.sh - the layout rules of docs/architecture.md, checked on every
# #include of the tree (fails on the first violation, naming file and line):
#
#   include/     the public handler ABI: includes nothing of ours
#   shm/         includes only shm/ (no policy, no logging)
#   core/        shm/, core/, the public header
#   gateway/     shm/, core/, gateway/, the public header
#   worker/      shm/, core/, worker/, the public header
#   supervisor/  anything of ours
#
# Also: no .c file in supervisor/ over 700 lines, and no file refers to a
# document outside the repository.
set -eu
cd "$(dirname "$0")/.."
bad=0
allowed() {  # allowed DIR -> space-separated include prefixes
    case "$1" in
        include) echo "" ;;
        shm) echo "shm/" ;;
        core) echo "shm/ core/ ringmaster_handler.h" ;;
        gateway) echo "shm/ core/ gateway/ ringmaster_handler.h" ;;
        worker) echo "shm/ core/ worker/ ringmaster_handler.h" ;;
        supervisor) echo "shm/ core/ gateway/ worker/ supervisor/ ringmaster_handler.h" ;;
    esac
}
for dir in include shm core gateway worker supervisor; do
    ok=$(allowed "$dir")
    for f in $(find "$dir" -name '*.[ch]' | sort); do
        # Quoted includes only: <...> are system headers (and autoconf's <config.h>).
        grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" | while IFS= read -r line; do
            inc=$(printf '%s\n' "$line" | sed 's/.*include[[:space:]]*"\([^"]*\)".*/\1/')
            hit=0
            for p in $ok; do
                case "$inc" in "$p"*) hit=1 ;; esac
            done
            if [ "$hit" = 0 ]; then
                echo "layout: $f:${line%%:*}: $dir/ may not include \"$inc\" (allowed: ${ok:-nothing of ours})"
                exit 1
            fi
        done || bad=1
    done
done
for f in supervisor/*.c; do
    n=$(wc -l < "$f")
    if [ "$n" -gt 700 ]; then
        echo "layout: $f has $n lines (supervisor/ files stay under 700: split by concern)"
        bad=1
    fi
done
# A git checkout: the files git tracks. Otherwise (an unpacked tarball, which
# may itself sit inside some other git checkout): every text file, but not
# those of build trees made inside it (make distcheck's _build and _inst, a
# build/ folder) nor test logs.
if [ "$(git rev-parse --show-toplevel 2>/dev/null || true)" = "$(pwd -P)" ]; then
    files=$(git ls-files | grep -v '^tests/layout_check.sh$' || true)
else
    files=$(find . \( -path ./.git -o -path ./_build -o -path ./_inst -o -path ./build \) -prune -o \
        -type f ! -name layout_check.sh ! -name '*.log' ! -name '*.trs' -print)
fi
if [ -n "$files" ] && grep -I -n 'DESIGN\.md\|STYLE\.md\|\.\./shared/' $files 2>/dev/null; then
    echo "layout: the lines above refer to documents outside the repository"
    bad=1
fi
[ "$bad" = 0 ] && echo "layout: every #include follows the layering; supervisor/ files are small"
exit "$bad"
