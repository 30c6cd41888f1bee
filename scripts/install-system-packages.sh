#!/usr/bin/env bash
# Install the system programs tuneloop's monitoring uses (Prometheus, promtool, Alertmanager)
# from Debian/Ubuntu packages. Does nothing when they are present; explains what to do when it
# cannot install them (no apt-get, or not root and no sudo).
set -euo pipefail

missing=()
command -v prometheus >/dev/null || missing+=(prometheus)
command -v promtool >/dev/null || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null || command -v alertmanager >/dev/null \
  || missing+=(prometheus-alertmanager)
((${#missing[@]})) || exit 0
packages=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')

if ! command -v apt-get >/dev/null; then
  echo "system packages: no apt-get here; install Prometheus and Alertmanager yourself ($packages)" >&2
  exit 0
fi
sudo=""
if [[ $(id -u) != 0 ]]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo="sudo -n"
  else
    echo "system packages: run 'sudo apt-get install $packages' to enable the monitoring parts" >&2
    exit 0
  fi
fi
echo "system packages: installing $packages"
export DEBIAN_FRONTEND=noninteractive
# The packages' service scripts try to start daemons; without an init system that is refused
# harmlessly. tuneloop starts Prometheus itself, on its own ports and data folder.
$sudo apt-get install -y -q --no-install-recommends $packages >/dev/null \
  || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q --no-install-recommends $packages >/dev/null; }
