#!/usr/bin/env bash
# The base image deploy/Dockerfile starts FROM, built here where no registry of images is
# reachable: `deploy/base-image.sh [IMAGE]` (default debian:bookworm-slim; as root).
#
# A `debootstrap --variant=minbase` Debian 12 with this machine's registry settings (apt
# sources, CA bundle, pip's certificate setting: scripts/lib.sh copy_registry_settings),
# trimmed and imported into the engine of $DOCKER_HOST under the name Docker Hub uses, so the
# Dockerfile is the same here and on a machine that pulls the real one. Nothing happens when
# the image is already there. (docs/deploy.md "Containers".)
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

IMAGE="${1:-debian:bookworm-slim}"
CACHE=/var/cache/attune-fresh   # debootstrap's downloads, shared with scripts/fresh-check.sh

docker image inspect "$IMAGE" >/dev/null 2>&1 && exit 0
[ "$(id -u)" -eq 0 ] || die "building the $IMAGE base image with debootstrap needs root"
command -v debootstrap >/dev/null || apt_install debootstrap
WORK="$(mktemp -d "${TMPDIR:-/var/tmp}/attune-base.XXXXXX")"
trap 'rm -rf --one-file-system "$WORK"' EXIT
say "debootstrap --variant=minbase bookworm (the $IMAGE stand-in)"
mkdir -p "$CACHE"
debootstrap --variant=minbase --cache-dir="$CACHE" bookworm "$WORK/root" "$(debian_mirror)" \
  >"$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
copy_registry_settings "$WORK/root"
( cd "$WORK/root"
  rm -rf var/cache/apt/archives/*.deb var/lib/apt/lists/* usr/share/doc usr/share/man \
         usr/share/locale )
say "importing it as $IMAGE"
tar --numeric-owner -C "$WORK/root" -c . | docker import --change 'CMD ["bash"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$IMAGE" >/dev/null
