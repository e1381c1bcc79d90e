#!/usr/bin/env bash
# Install the Debian/Ubuntu packages hb2r needs, only those that are missing.
set -euo pipefail

missing=()
command -v HandBrakeCLI >/dev/null 2>&1 || missing+=(handbrake-cli)
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
command -v ffprobe >/dev/null 2>&1 || missing+=(ffmpeg)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
command -v make >/dev/null 2>&1 || missing+=(make)
# The deployment tests boot a throwaway Debian root with systemd-nspawn and reach it over SSH.
command -v systemd-nspawn >/dev/null 2>&1 || missing+=(systemd-container)
command -v nsenter >/dev/null 2>&1 || missing+=(util-linux)
# debootstrap lives in /usr/sbin, which is not on a normal user's PATH.
{ command -v debootstrap || [ -x /usr/sbin/debootstrap ]; } >/dev/null 2>&1 || missing+=(debootstrap)
# debootstrap checks the Debian 12 and 13 roots' Release files with Debian's archive keys.
[ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring)
command -v ssh >/dev/null 2>&1 || missing+=(openssh-client)
command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
# The status page's tests drive Debian's chromium with playwright (never `playwright install`:
# it downloads a browser build of its own); a font keeps the screenshots readable.
[ -x /usr/bin/chromium ] || missing+=(chromium)
fc-list 2>/dev/null | grep -qi dejavu || [ -d /usr/share/fonts/truetype/dejavu ] || missing+=(fonts-dejavu-core)
# PostgresStore: psycopg loads Debian's libpq; the tests start throwaway clusters with the
# server's initdb/pg_ctl (in /usr/lib/postgresql/<major>/bin, not on PATH) and runuser.
compgen -G '/usr/lib/*/libpq.so.5' >/dev/null || missing+=(libpq5)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
command -v runuser >/dev/null 2>&1 || [ -x /usr/sbin/runuser ] || missing+=(util-linux)
# The multi-host tests (tests/support/multihost.py) put each agent in a network namespace on a bridge
# (ip netns, veth; iproute2), bind-mount its library (mount) and probe its /health inside (curl).
{ command -v ip || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ]; } >/dev/null 2>&1 || missing+=(iproute2)
command -v mount >/dev/null 2>&1 || missing+=(mount)
command -v curl >/dev/null 2>&1 || missing+=(curl)
# The pick-up tests mount a library over FUSE (bindfs), where other machines' changes send no
# inotify event, to see hb2r poll it.
command -v bindfs >/dev/null 2>&1 || missing+=(bindfs)
# The container tests (tests/container) build and run hb2r's image with rootful podman and the runc
# runtime (crun fails on hybrid cgroup hosts); the base image comes from debootstrap (above).
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v runc >/dev/null 2>&1 || [ -x /usr/sbin/runc ] || missing+=(runc)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${missing[@]}" | sort -u) >/dev/null
