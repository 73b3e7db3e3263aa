#!/bin/sh
# Print the first Debian archive URI (one ending in /debian) from the host's apt sources, in
# deb822 (.sources) or one-line (.list) form; nothing if the host has none.
for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
  [ -r "$f" ] || continue
  case "$f" in
    *.sources) awk '/^URIs:/ {for (i = 2; i <= NF; i++) print $i}' "$f" ;;
    *) awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; break}}' "$f" ;;
  esac
done | grep -m1 -E '/debian/?$' | sed 's:/$::'
