#!/usr/bin/env bash
# ffmpeg and ffprobe must be on PATH; install Debian's package when we may.
set -euo pipefail
if command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "Installing ffmpeg (Debian package)…"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null
  exit 0
fi
echo "ffmpeg and ffprobe are needed: install your system's ffmpeg package (e.g. sudo apt-get install ffmpeg)." >&2
exit 1
