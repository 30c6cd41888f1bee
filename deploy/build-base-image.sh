#!/usr/bin/env bash
# Make a local base image for deploy/Dockerfile where no container registry can be reached:
# Debian bookworm (minbase) with Python 3.11, venv, CA certificates and `python` on PATH,
# made with debootstrap from the host's Debian mirror and imported into podman.
#
#   BASE_IMAGE     tag of the result (default: localhost/tuneloop-base:bookworm)
#   DEBIAN_MIRROR  mirror to bootstrap from (default: the host's apt sources, else deb.debian.org)
#
# Needs root, debootstrap and podman (scripts/install-container-tools.sh installs them).
set -euo pipefail

BASE_IMAGE=${BASE_IMAGE:-localhost/tuneloop-base:bookworm}
SUITE=bookworm
PACKAGES=python3,python3-venv,python-is-python3,ca-certificates

# The first URI of the host's apt sources that serves $SUITE itself (not -security/-updates).
host_mirror() {
  local file
  for file in /etc/apt/sources.list.d/*.sources; do
    [[ -f $file ]] || continue
    awk -v suite="$SUITE" '
      /^URIs:/ { uri = $2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) { print uri; exit } }
      /^$/ { uri = "" }' "$file"
  done
  for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $file ]] || continue
    awk -v suite="$SUITE" '$1 == "deb" && $0 !~ /\[/ && $3 == suite { print $2 }' "$file"
  done
}

mirror=${DEBIAN_MIRROR:-$(host_mirror | head -n1)}
mirror=${mirror:-http://deb.debian.org/debian}
rootfs=$(mktemp -d "${TMPDIR:-/tmp}/tuneloop-base.XXXXXX")
trap 'rm -rf "$rootfs"' EXIT

echo "base image: debootstrap $SUITE (minbase + $PACKAGES) from $mirror"
start=$SECONDS
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" "$mirror"
# The package lists and downloaded .debs are only needed to install; the image never runs apt.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
  "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/*

echo "base image: importing as $BASE_IMAGE"
tar --numeric-owner -C "$rootfs" -c . | podman import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  --message "Debian $SUITE minbase with Python 3, from $mirror" \
  - "$BASE_IMAGE"
echo "base image: $BASE_IMAGE built in $((SECONDS - start)) s"
