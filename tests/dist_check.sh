#!/bin/sh
# dist_check.sh SRCDIR DISTDIR - every file git tracks in SRCDIR is in the
# unpacked tarball DISTDIR (make distcheck runs it as its distcheck-hook, on
# the tarball it has just unpacked). Files that are deliberately left out are
# listed below. Outside a git checkout (a distcheck run from a tarball) there
# is nothing to compare with: it says so and passes.
set -eu
src=$1
dist=$2
not_shipped='^\.gitignore$'
top=$(git -C "$src" rev-parse --show-toplevel 2>/dev/null || true)
if [ -z "$top" ] || [ "$top" != "$(cd "$src" && pwd -P)" ]; then
    echo "dist_check: $src is not a git checkout: nothing to compare the tarball with"
    exit 0
fi
missing=$(git -C "$src" ls-files | grep -v -E "$not_shipped" | while IFS= read -r f; do
    [ -e "$dist/$f" ] || printf '%s\n' "$f"
done)
if [ -n "$missing" ]; then
    echo "dist_check: tracked by git but not in the tarball (add them to EXTRA_DIST in Makefile.am):" >&2
    printf '  %s\n' $missing >&2
    exit 1
fi
echo "dist_check: the tarball has every file git tracks (but .gitignore)"
