#!/usr/bin/env bash
# Make a small demo library of short test clips under demo/ (skips clips that exist).
set -euo pipefail
root="${1:-demo}"

clip() {  # clip PATH SECONDS SIZE
  local path="$root/$1"
  [ -s "$path" ] && return 0
  mkdir -p "$(dirname "$path")"
  ffmpeg -nostdin -loglevel error -y \
    -f lavfi -i "testsrc2=size=$3:rate=25" -f lavfi -i "sine=frequency=440:sample_rate=48000" \
    -t "$2" -c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a aac -shortest "$path.tmp.${path##*.}"
  mv "$path.tmp.${path##*.}" "$path"
}

clip "tv/Demo Show/Season 01/Demo Show - S01E01.mkv" 3 640x360
clip "tv/Demo Show/Season 01/Demo Show - S01E02.mkv" 2 640x360
clip "tv/Other Show/Other Show - S01E01.mp4" 4 320x180
clip "movies/Demo Movie (2024)/Demo Movie (2024).mp4" 5 640x360
clip "movies/Short Film.mkv" 2 320x180
mkdir -p "$root/archive"
echo "demo library ready in $root/"
