#!/usr/bin/env bash
# One-command, idempotent set-up on a fresh Debian machine: apt packages, then a Python venv holding
# torch==2.11.0 (its LibTorch is what the C++ build links). Heavy parts live in a cache outside the clone
# ($JOULE_CACHE, default ~/.cache/joule) so a second run, or a fresh clone on the same machine, is fast.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${JOULE_CACHE:-$HOME/.cache/joule}"
mkdir -p "$cache"

apt_pkgs=(build-essential cmake ninja-build ccache pkg-config python3-venv
          libeigen3-dev libdnnl-dev libgtest-dev libgmock-dev libbenchmark-dev
          libcli11-dev nlohmann-json3-dev libyaml-cpp-dev libfmt-dev libutf8proc-dev libgloo-dev)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "[setup] apt: installing ${missing[*]}"
  sudo_cmd=(); [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The venv is keyed by its requirements so a change to them builds a fresh one instead of mutating the old.
req="$root/tools/requirements.txt"
req_nodeps="$root/tools/requirements-nodeps.txt"  # model packages whose framework dependencies we do not want
key=$(cat "$req" "$req_nodeps" | sha1sum | cut -c1-12)
venv="$cache/venv-$key"
if [ ! -f "$venv/.complete" ]; then
  echo "[setup] venv: creating $venv (torch is large; the pip cache keeps the download for next time)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q -r "$req"
  "$venv/bin/pip" install -q --no-deps -r "$req_nodeps"
  touch "$venv/.complete"
fi
ln -sfn "$venv" "$root/.venv"
# Venvs of older requirement sets are 5 GB each: keep only the current one.
for old in "$cache"/venv-*; do
  [ "$old" = "$venv" ] || [ ! -d "$old" ] || rm -rf "$old"
done
echo "[setup] ok: venv $(readlink "$root/.venv"), torch $("$root/.venv/bin/python" -c 'import torch; print(torch.__version__)')"
