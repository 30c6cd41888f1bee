#!/usr/bin/env bash
# Install what building and running the container image needs (make image, make
# test-container) from Debian/Ubuntu packages: podman and buildah, debootstrap for the local base
# image, and the container runtime and network pieces podman uses. Does nothing when they are
# present; fails with the command to run when it cannot install them (no apt-get, or not root
# and no sudo).
set -euo pipefail

# runc besides crun: crun refuses hosts whose cgroups are hybrid (deploy/build_image.py picks
# runc there). iptables: netavark sets up container networks with it.
packages=(podman buildah debootstrap debian-archive-keyring uidmap slirp4netns fuse-overlayfs
  netavark aardvark-dns crun runc iptables)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done
((${#missing[@]})) || exit 0

if ! command -v apt-get >/dev/null; then
  echo "container tools: no apt-get here; install ${missing[*]} yourself" >&2
  exit 1
fi
sudo=""
if [[ $(id -u) != 0 ]]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo="sudo -n"
  else
    echo "container tools: run 'sudo apt-get install ${missing[*]}'" >&2
    exit 1
  fi
fi
echo "container tools: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
  || { $sudo apt-get update -q >/dev/null \
    && $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
