#!/usr/bin/env bash
# System tools Offload needs, from Debian's packages, installed when missing (as root).
#   ffmpeg/ffprobe: media work (imageio-ffmpeg ships ffmpeg alone, without ffprobe)
#   chromium + chromedriver: the browser test of the live admin (tests only)
#   promtool and prometheus (Debian's prometheus package): checks and runs deploy/prometheus/ (tests only)
#   nginx: the shipped site in deploy/nginx/, in front of the real app servers (tests only)
#   wrk: the load generator of bench/, whose scripts the suite smoke-runs (tests only)
#   openssl: the certificates of the TLS mail servers the notification tests deliver to (tests only)
#   python3-venv: `python3 -m venv` needs it on Debian (--venv: before .venv is created)
set -euo pipefail
want=()
mode="${1:-}"
if [ "$mode" = "--venv" ]; then
  ${PYTHON:-python3} -c "import ensurepip, venv" 2>/dev/null || want+=(python3-venv)
else
  command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || want+=(ffmpeg)
fi
if [ "$mode" = "--test" ]; then
  command -v chromium >/dev/null || want+=(chromium)
  command -v chromedriver >/dev/null || want+=(chromium-driver)
  command -v promtool >/dev/null || want+=(prometheus)
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || want+=(nginx)
  command -v wrk >/dev/null || want+=(wrk)
  command -v openssl >/dev/null || want+=(openssl)
fi
[ ${#want[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "Installing ${want[*]} (Debian packages)…"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${want[@]}" >/dev/null
  exit 0
fi
echo "Please install: ${want[*]} (e.g. sudo apt-get install ${want[*]})." >&2
exit 1
