#!/bin/sh
# install-runtime.sh - the runtime stage of the ringmaster image, run as
# root inside it (Containerfile) or inside a chroot of a Debian 12 minbase
# folder (tests/container/runtime_chroot.sh): install the runtime packages
# (runtime-packages.txt, next to this script), make the user ringmaster
# runs as, and leave no apt lists or caches behind.
#
#   sh install-runtime.sh [RUNTIME-PACKAGES-FILE]
set -eu
list=${1:-$(dirname "$0")/runtime-packages.txt}
pkgs=$(sed -e 's/#.*//' "$list" | tr -s ' \t\n' ' ')
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# --no-install-recommends: tesseract's and scikit-learn's recommended extras
# (more languages, plotting, a C compiler) are no runtime need of ours.
apt-get install -y -q --no-install-recommends $pkgs
apt-get clean
rm -rf /var/lib/apt/lists/*
# A fixed uid/gid: Kubernetes' runAsNonRoot checks a numeric user, and the
# Deployment (deploy/kubernetes) names 10001.
groupadd --system --gid 10001 ringmaster
useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
    --shell /usr/sbin/nologin ringmaster
# runtime_dir's default: made for the user, for a container run without a
# /run volume; in Kubernetes /run is an emptyDir and ringmaster makes it.
install -d -o ringmaster -g ringmaster -m 0755 /run/ringmaster
