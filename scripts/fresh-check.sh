#!/usr/bin/env bash
# Prove the README's promise on a minimal Debian 12: `scripts/fresh-check.sh [--tests] [--keep]`.
#
# Builds a debootstrap `minbase` root (no python, no curl), gives it only this machine's registry
# settings (apt sources and local apt settings, the CA bundle, pip's and npm's certificate
# settings), clones this repository's HEAD into it, and inside it, as root with an empty
# environment, runs the README's up command and its five-minute tour (the tour is read from
# README.md, so the check follows the text); with --tests also the README's test command.
# Everything runs in its own PID and mount namespace: when the check ends, every process it
# started dies with the namespace and every mount goes with it. The root shares this machine's
# network, so the host's PostgreSQL and RabbitMQ (same ports) are stopped for the check and
# started again afterwards. --keep leaves the root on disk for a look.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUN_TESTS=""
KEEP=""
for arg in "$@"; do
  case "$arg" in
    --tests) RUN_TESTS=1 ;;
    --keep) KEEP=1 ;;
    *) die "usage: $0 [--tests] [--keep]" ;;
  esac
done
[ "$(id -u)" -eq 0 ] || die "the fresh check builds a root file system and must run as root"

SUITE=bookworm
CACHE=/var/cache/attune-fresh            # debootstrap's downloaded packages, kept between runs
WORK="$(mktemp -d "${ATTUNE_FRESH_DIR:-/var/tmp}/attune-fresh.XXXXXX")"
NEWROOT="$WORK/root"
REPORT="$WORK/report"
HOST_PG=""
HOST_RABBIT=""

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

stop_host_services() {
  if pg_up; then
    HOST_PG=1
    say "stopping this machine's PostgreSQL for the check (it is started again afterwards)"
    pg_ctlcluster --skip-systemctl-redirect "$(pg_version)" main stop
  fi
  if rabbit_up; then
    HOST_RABBIT=1
    say "stopping this machine's RabbitMQ for the check (it is started again afterwards)"
    rabbitmqctl -q stop >/dev/null 2>&1 || true
    for _ in $(seq 1 60); do rabbit_up || break; sleep 0.5; done
  fi
  ! port_busy 5432 && ! port_busy 5672 || die "ports 5432/5672 are still taken on this machine"
}

cleanup() {
  local status=$?
  trap - EXIT
  [ ! -f "$REPORT" ] || { say "fresh check report"; cat "$REPORT" >&2; }
  if [ -n "$KEEP" ]; then say "kept $WORK"; else rm -rf --one-file-system "$WORK"; fi
  [ -z "$HOST_PG" ] || ensure_postgres
  [ -z "$HOST_RABBIT" ] || ensure_rabbitmq
  exit "$status"
}

build_root() {
  mkdir -p "$CACHE" "$NEWROOT"
  command -v debootstrap >/dev/null || apt_install debootstrap
  command -v git >/dev/null || apt_install git
  say "debootstrap --variant=minbase $SUITE into $NEWROOT"
  debootstrap --variant=minbase --cache-dir="$CACHE" "$SUITE" "$NEWROOT" "$(debian_mirror)" \
    >"$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }

  say "copying this machine's registry settings into the new root"
  cp -a /etc/resolv.conf /etc/hosts "$NEWROOT/etc/"
  copy_registry_settings "$NEWROOT"
  # No init system runs in the root: like this machine's images, packages do not start their
  # services at install; the project's scripts must start everything themselves.
  printf '#!/bin/sh\nexit 101\n' >"$NEWROOT/usr/sbin/policy-rc.d"
  chmod 755 "$NEWROOT/usr/sbin/policy-rc.d"

  say "cloning $(git -C "$ROOT" rev-parse --short HEAD) into the new root"
  git clone -q --no-hardlinks "$ROOT" "$NEWROOT/srv/attune"
}

# The README's tour, as a user would paste it: the first bash block under its heading.
readme_tour() {
  awk '/^## A five-minute tour/{f=1} f&&/^```bash/{b=1; next} b&&/^```/{exit} b' "$ROOT/README.md"
}

# What runs inside the new root (PID 1 of its namespace is the bash running this).
inside_script() {
  cat <<EOF
set -euo pipefail
cd /srv/attune
stop_all() {
  ./scripts/down.sh >/dev/null 2>&1 || true
  ./scripts/docker.sh stop >/dev/null 2>&1 || true
  rabbitmqctl -q stop >/dev/null 2>&1 || true
  pg_ctlcluster --skip-systemctl-redirect 15 main stop >/dev/null 2>&1 || true
}
trap stop_all EXIT
start=\$(date +%s)
./scripts/up.sh
echo "up: healthy after \$(( \$(date +%s) - start )) s" >>/report
bash -euo pipefail /tour.sh | tee /tour.out
grep -q 'hello.greet succeeded' /tour.out || { echo "tour: the greeting did not print" >>/report; exit 1; }
echo "tour: \$(tail -n1 /tour.out)" >>/report
if [ -n "$RUN_TESTS" ]; then
  ./scripts/down.sh
  start=\$(date +%s)
  status=0
  ./scripts/test.sh 2>&1 | tee /test.out || status=\$?
  echo "test command: exit \$status after \$(( \$(date +%s) - start )) s" >>/report
  grep -E '^=+ .*(passed|failed|error)' /test.out | tail -n1 >>/report || true
  exit \$status
fi
EOF
}

run_inside() {
  readme_tour >"$NEWROOT/tour.sh"
  [ -s "$NEWROOT/tour.sh" ] || die "no bash block under '## A five-minute tour' in README.md"
  inside_script >"$NEWROOT/check.sh"
  say "running the README's commands inside the new root (log: $WORK/inside.log)"
  local started=$SECONDS status=0
  # A new mount namespace (private) whose root *is* the new root (pivot_root, not chroot:
  # runc and bubblewrap inside must see a real mount-namespace root, as on a machine), with
  # its own /proc, /dev, /sys, /run and /dev/shm; the old root is detached.
  unshare --pid --fork --kill-child --mount --propagation private -- bash -euc '
    r="$1"
    mount --bind "$r" "$r"
    mount -t proc proc "$r/proc"
    mount --rbind /sys "$r/sys"
    mount --rbind /dev "$r/dev"
    mount -t tmpfs -o mode=1777 tmpfs "$r/dev/shm"
    mount -t tmpfs tmpfs "$r/run"
    mkdir -p "$r/.oldroot"
    cd "$r"
    pivot_root . .oldroot
    exec chroot . /bin/bash -c "umount -l /.oldroot && rmdir /.oldroot && exec /usr/bin/env -i \
      HOME=/root LANG=C.UTF-8 TERM=dumb \
      PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin /bin/bash /check.sh"
    ' fresh-check "$NEWROOT" >"$WORK/inside.log" 2>&1 || status=$?
  cp "$NEWROOT/report" "$REPORT" 2>/dev/null || true
  echo "whole check: exit $status after $(( SECONDS - started )) s inside the root" >>"$REPORT"
  [ "$status" -eq 0 ] || { tail -40 "$WORK/inside.log" >&2; KEEP=1; die "the fresh check failed"; }
  say "fresh check passed"
}

for port in 8080 18080; do
  ! port_busy "$port" || die "port $port is taken: stop this machine's platform (scripts/down.sh)"
done
trap cleanup EXIT
build_root
stop_host_services
run_inside
