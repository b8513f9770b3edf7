#!/usr/bin/env bash
# Installs the Debian packages longtail needs, only those missing. Idempotent; needs root
# (or sudo) only when something is missing.
set -eu
pkgs="gcc make libdnnl-dev zlib1g-dev libstb-dev dataset-fashion-mnist"
if [ "${LT_WITH_TORCH:-0}" = 1 ]; then pkgs="$pkgs python3-torch python3-numpy"; fi
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "longtail: installing Debian packages:$missing"
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $missing
