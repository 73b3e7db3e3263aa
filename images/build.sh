#!/bin/bash
# Build anycast-ctl's container images with podman, with no container registry:
#   1. a Debian bookworm base from the Debian archive (debootstrap, once; cached), `podman import`ed;
#   2. a wheelhouse of anycast-ctl and its dependencies, built on the host with the venv's pip;
#   3. the host, LB and router images from images/*/Containerfile, whose only network is the
#      Debian archive (apt-get, through the host's network: --network host).
# Usage (the Makefile's `images` target): images/build.sh BUILD_DIR PIP TAG MIRROR
# Needs root (debootstrap, rootful podman) and CONTAINERS_CONF pointing at images/containers.conf.
set -euo pipefail
build=$1 pip=$2 tag=$3 mirror=${4:?the Debian archive URI, as the Makefile reads it from the apt sources}
repo=$(cd "$(dirname "$0")/.." && pwd)
base=localhost/anycast-ctl-base:bookworm
: "${CONTAINERS_CONF:?set CONTAINERS_CONF (the Makefile points it at images/containers.conf)}"
mkdir -p "$build"
t0=$SECONDS
step() { echo "images: $1 ($((SECONDS - t0)) s so far)"; }

if ! podman image exists "$base"; then
  if [ ! -s "$build/base.tar" ]; then
    step "debootstrap bookworm (minbase) from $mirror"
    rm -rf "$build/rootfs"
    debootstrap --variant=minbase bookworm "$build/rootfs" "$mirror" >"$build/debootstrap.log" 2>&1 \
      || { tail -20 "$build/debootstrap.log"; exit 1; }
    # The same suites as the host, so FRR and HAProxy are the versions the namespace lab runs.
    security=${mirror%/debian}/debian-security
    printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb %s bookworm-security main\n' \
      "$mirror" "$mirror" "$security" >"$build/rootfs/etc/apt/sources.list"
    install -m 755 "$repo/images/policy-rc.d" "$build/rootfs/usr/sbin/policy-rc.d"
    printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
      >"$build/rootfs/etc/apt/apt.conf.d/90anycast-ctl"
    rm -rf "$build/rootfs/var/cache/apt/archives/"*.deb "$build/rootfs/var/lib/apt/lists/"*
    tar --numeric-owner -C "$build/rootfs" -cf "$build/base.tar.tmp" .
    mv "$build/base.tar.tmp" "$build/base.tar"
    rm -rf "$build/rootfs"
  fi
  step "podman import $base"
  podman import --quiet "$build/base.tar" "$base" >/dev/null
fi

step "wheelhouse (pip wheel)"
ctx=$build/context
mkdir -p "$ctx/wheels"
rm -f "$ctx/wheels"/anycast_ctl-*.whl  # always the working tree's anycast-ctl
"$pip" wheel --quiet --disable-pip-version-check --wheel-dir "$ctx/wheels" "$repo"
install -m 755 "$repo/anycast_ctl/supervise.py" "$ctx/anycast-ctl-supervise"

wheels=$(cat "$ctx/wheels"/*.whl | sha256sum | cut -c1-16)
for image in host lb router; do
  step "podman build anycast-ctl-$image:$tag"
  podman build --quiet --network host --layers \
    --build-arg BASE="$base" --build-arg HOST_IMAGE="localhost/anycast-ctl-host:$tag" \
    --build-arg WHEELS="$wheels" \
    -t "localhost/anycast-ctl-$image:$tag" -f "$repo/images/$image/Containerfile" "$ctx" >/dev/null
done
step "done"
podman images --filter reference='localhost/anycast-ctl-*' --format '{{.Repository}}:{{.Tag}} {{.Size}}'
