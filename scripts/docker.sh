#!/usr/bin/env bash
# The Docker Engine the container runner uses: `scripts/docker.sh start|stop|status|env`.
#
# start (idempotent): install Debian's docker.io if dockerd is missing, start dockerd on a
# private socket if it does not answer, and build the local python:3.11-slim image from Debian
# packages if it is missing (no registry is reachable here; docs/container-engine notes).
# Prints nothing on success but `export DOCKER_HOST=...`, so `eval "$(scripts/docker.sh env)"`
# works. Exits non-zero with dockerd's log tail when the engine cannot start: CI fails, it
# never silently skips the container tests.
#
# The engine's socket is root's: whoever can use it is root on this host. It is mode 0660 with
# group `attune` (the services' user, made by ensure_service_user in lib.sh) when that group
# exists, else group root, and its folder is closed to everyone else (0710 root:attune, or 0700).
# Tenant code never reaches it: its sandbox uids are in neither group and its mount namespace
# does not show /tmp. Sourcing this file defines the functions without running a command.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Keep it short: containerd's socket path under it must stay below 108 characters.
ENGINE_DIR="${ATTUNE_DOCKER_DIR:-/tmp/attune-docker}"
SOCK="$ENGINE_DIR/docker.sock"
IMAGE="${ATTUNE_DOCKER_IMAGE:-python:3.11-slim}"
export DOCKER_HOST="unix://$SOCK"
SERVICE_GROUP="${ATTUNE_SERVICE_GROUP:-attune}"
SUDO="${SUDO:-}"

ping_engine() {
  $SUDO curl -sf --max-time 2 --unix-socket "$SOCK" http://localhost/_ping >/dev/null 2>&1
}

# The group that may use the engine: the services' group when it exists, else root alone.
engine_group() {
  if getent group "$SERVICE_GROUP" >/dev/null 2>&1; then echo "$SERVICE_GROUP"; else echo root; fi
}

# "owner:group mode" of a path as stat sees it (mode in octal, e.g. "root:attune 710").
access_of() { stat -c '%U:%G %a' "$1"; }

# Is the folder root's and closed to others, and the socket (when there) 0660 with the group?
engine_secured() {
  local group dir_mode; group="$(engine_group)"
  if [ "$group" = root ]; then dir_mode=700; else dir_mode=710; fi
  [ -d "$ENGINE_DIR" ] && [ ! -L "$ENGINE_DIR" ] || return 1
  [ "$(access_of "$ENGINE_DIR")" = "root:$group $dir_mode" ] || return 1
  [ ! -e "$SOCK" ] || [ "$(access_of "$SOCK")" = "root:$group 660" ]
}

# Make the folder (root's, entered only by the engine's group) and fix an existing socket: an
# engine started before (or by an older version of this script) may have left group `docker`.
secure_engine() {
  engine_secured && return
  need_root_or_sudo "securing the Docker engine's socket"
  local group dir_mode owner; group="$(engine_group)"
  if [ "$group" = root ]; then dir_mode=0700; else dir_mode=0710; fi
  [ ! -L "$ENGINE_DIR" ] || die "$ENGINE_DIR is a symbolic link: remove it"
  $SUDO mkdir -p "$ENGINE_DIR"
  owner="$(stat -c %u "$ENGINE_DIR")"
  # A folder in /tmp that another user made first could hold their links: never adopt it.
  [ "$owner" = 0 ] || die "$ENGINE_DIR belongs to uid $owner, not root: remove it"
  $SUDO chown "root:$group" "$ENGINE_DIR"
  $SUDO chmod "$dir_mode" "$ENGINE_DIR"
  if [ -S "$SOCK" ]; then
    $SUDO chown "root:$group" "$SOCK"
    $SUDO chmod 0660 "$SOCK"
  fi
  engine_secured || die "could not restrict $ENGINE_DIR and $SOCK to root:$group"
}

docker_cli() {  # Debian's client, or any docker CLI on PATH (both negotiate API 1.41)
  local cli; cli="$(command -v docker || true)"; [ -n "$cli" ] || cli=/usr/bin/docker
  "$cli" "$@"
}

# docker.io: the engine. docker-registry: a local registry the tests pull from for real
# (127.0.0.0/8 is an insecure registry by default), since Docker Hub is not reachable here.
# curl pings the engine; dpkg-deb and tar build the image.
install_engine() {
  ensure_tools
  command -v dockerd >/dev/null && command -v docker-registry >/dev/null && return
  apt_install docker.io docker-registry
  command -v dockerd >/dev/null || die "docker.io installed but dockerd is not on PATH"
}

start_engine() {
  ping_engine && return
  need_root_or_sudo "starting the Docker engine"
  # A dockerd that was killed (or a machine that lost power) leaves its pid file, and a new
  # dockerd refuses to start beside it.
  local old; old="$($SUDO cat "$ENGINE_DIR/dockerd.pid" 2>/dev/null || true)"
  if [ -n "$old" ] && ! grep -qs dockerd "/proc/$old/comm"; then
    $SUDO rm -f "$ENGINE_DIR/dockerd.pid"; fi
  say "starting dockerd on $SOCK"
  # --bridge=none --iptables=false: no docker0 or NAT rules on the host; actions run with
  # network none anyway. --group: the socket is made 0660 with the engine's group (never
  # `docker`, which the package creates). setsid: the engine outlives this script, like
  # PostgreSQL and RabbitMQ; 9>&-: it must not inherit (and hold forever) the start lock.
  # shellcheck disable=SC2016  # $0 and $@ are the inner shell's
  $SUDO setsid sh -c 'exec dockerd "$@" >"$0" 2>&1' "$ENGINE_DIR/dockerd.log" \
      --host "unix://$SOCK" --group "$(engine_group)" --data-root "$ENGINE_DIR/data" \
      --exec-root "$ENGINE_DIR/exec" --pidfile "$ENGINE_DIR/dockerd.pid" \
      --bridge=none --iptables=false </dev/null 9>&- &
  for _ in $(seq 1 150); do ping_engine && return; sleep 0.2; done
  $SUDO tail -20 "$ENGINE_DIR/dockerd.log" >&2 || true
  die "dockerd did not answer on $SOCK within 30 s (log: $ENGINE_DIR/dockerd.log)"
}

# python:3.11-slim stand-in: Debian's python3.11 and its libraries unpacked (~6 s, ~52 MB).
build_python_image() {
  say "building the local $IMAGE image from Debian packages (once)"
  local work; work="$(mktemp -d "${TMPDIR:-/tmp}/attune-img.XXXX")"
  mkdir -p "$work/debs" "$work/root"
  local pkgs="libc6 gcc-12-base libgcc-s1 libbz2-1.0 libcrypt1 libdb5.3 libexpat1 libffi8 liblzma5
    libmd0 libncursesw6 libnsl2 libtirpc3 libtirpc-common libgssapi-krb5-2 libk5crypto3
    libkeyutils1 libkrb5-3 libkrb5support0 libcom-err2 libreadline8 readline-common libsqlite3-0
    libssl3 libtinfo6 libuuid1 zlib1g libzstd1 libpython3.11-minimal libpython3.11-stdlib
    python3.11-minimal python3.11 media-types tzdata ca-certificates busybox-static"
  # shellcheck disable=SC2086
  (cd "$work/debs" && apt-get download $pkgs >/dev/null 2>&1) || {
    need_root_or_sudo "refreshing the package lists"
    $SUDO apt-get -o DPkg::Lock::Timeout=600 -qq update >&2
    (cd "$work/debs" && apt-get download $pkgs >/dev/null); }
  for deb in "$work"/debs/*.deb; do dpkg-deb -x "$deb" "$work/root"; done
  ( cd "$work/root"
    for d in bin sbin lib lib64; do   # merged /usr, as in Debian images
      if [ -d "$d" ] && [ ! -L "$d" ]; then mkdir -p "usr/$d"; cp -a "$d/." "usr/$d/"; rm -rf "$d"; fi
      ln -sfn "usr/$d" "$d"; done
    ln -sf python3.11 usr/bin/python3; ln -sf python3 usr/bin/python
    for a in sh ls cat echo env id sleep; do ln -sf busybox "usr/bin/$a"; done
    mkdir -p tmp etc root proc sys dev; chmod 1777 tmp
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
      > etc/passwd
    printf 'root:x:0:\nnogroup:x:65534:\n' > etc/group
    rm -rf usr/share/doc usr/share/man usr/share/locale )
  tar --numeric-owner -C "$work/root" -c . | docker_cli import \
      --change 'CMD ["python3"]' --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
      --change 'ENV LANG=C.UTF-8' - "$IMAGE" >/dev/null
  rm -rf "$work"
}

ensure_image() {
  docker_cli image inspect "$IMAGE" >/dev/null 2>&1 || build_python_image
  docker_cli image inspect "$IMAGE" >/dev/null 2>&1 || die "could not build the $IMAGE image"
}

start() {
  secure_engine
  # One start at a time (two test runs in parallel must not race to install or build).
  exec 9>"$ENGINE_DIR/start.lock"
  flock -w 600 9 || die "another scripts/docker.sh start holds $ENGINE_DIR/start.lock"
  install_engine
  start_engine
  secure_engine  # an engine that was already running keeps its socket: fix it too
  ensure_image
  echo "export DOCKER_HOST=$DOCKER_HOST"
}

stop() {
  local pid; pid="$(cat "$ENGINE_DIR/dockerd.pid" 2>/dev/null)" || return 0
  need_root_or_sudo "stopping the Docker engine"
  $SUDO kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 75); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  die "dockerd ($pid) did not stop within 15 s"
}

status() {
  if ping_engine; then echo "dockerd answers on $SOCK"; else echo "dockerd is down"; exit 1; fi
}

env_line() { echo "export DOCKER_HOST=$DOCKER_HOST"; }

[ "${BASH_SOURCE[0]}" = "$0" ] || return 0  # sourced (tests): functions only
case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) env_line ;;
  *) die "usage: $0 start|stop|status|env" ;;
esac
