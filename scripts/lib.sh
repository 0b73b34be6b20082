# Shared setup steps for scripts/up.sh and scripts/test.sh. Every step is idempotent.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
KEYS_FILE="${ATTUNE_KEYS_FILE:-$ROOT/.attune/keys.env}"
SERVICE_USER="${ATTUNE_SERVICE_USER:-attune}"
# The service user's subordinate ids: the uids and gids its sandboxes map tenant code to.
SUBORDINATE_IDS="1500000000-1509999999"

# Progress goes to standard error: a function whose output is captured ($(find_python)) stays clean.
say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

need_root_or_sudo() {
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
    die "$1 needs root (or sudo) and neither is available"; fi
}

# apt-get's messages go to standard error (its progress nowhere); the lists are refreshed once per run.
APT_UPDATED=""
apt_install() {
  need_root_or_sudo "installing $*"
  command -v apt-get >/dev/null || die "apt-get not found: install $* by hand"
  say "installing $* with apt"
  local apt=($SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -qq)
  if [ -z "$APT_UPDATED" ]; then "${apt[@]}" update >/dev/null; APT_UPDATED=1; fi
  "${apt[@]}" install -y --no-install-recommends "$@" >/dev/null </dev/null
}

# The first Debian mirror this machine's apt uses (deb822 or one-line format).
debian_mirror() {
  local uri
  uri="$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' \
         | grep -v security | head -n1)"
  [ -n "$uri" ] || uri="$(grep -hs '^deb ' /etc/apt/sources.list | awk '{print $2}' \
         | grep -v security | head -n1)"
  echo "${uri:-http://deb.debian.org/debian}"
}

# This machine's registry settings (apt sources and its own apt settings, the CA bundle, pip's
# and npm's certificate settings) copied into the Debian root $1: all a new root needs to reach
# the package registries this machine reaches (scripts/fresh-check.sh, deploy/base-image.sh).
copy_registry_settings() {
  rm -f "$1/etc/apt/sources.list"
  cp -a /etc/apt/sources.list.d/. "$1/etc/apt/sources.list.d/"
  find "$1/etc/apt/sources.list.d" -type f ! -name '*.list' ! -name '*.sources' -delete
  [ ! -f /etc/apt/sources.list ] || cp -a /etc/apt/sources.list "$1/etc/apt/"
  local conf
  for conf in /etc/apt/apt.conf.d/*; do   # this machine's own apt settings, not a package's
    dpkg -S "$conf" >/dev/null 2>&1 || cp -a "$conf" "$1/etc/apt/apt.conf.d/"
  done
  mkdir -p "$1/usr/local/share/ca-certificates" "$1/etc/ssl/certs"
  cp -a /usr/local/share/ca-certificates/. "$1/usr/local/share/ca-certificates/"
  cp -aL /etc/ssl/certs/ca-certificates.crt "$1/etc/ssl/certs/"
  for conf in /etc/pip.conf /etc/npmrc; do [ ! -f "$conf" ] || cp -a "$conf" "$1/etc/"; done
}

# Every program the scripts, the README tour and the tests call, installed where missing (a
# minimal Debian has none of them). Pairs of "command package".
TOOLS=(
  "curl curl" "pgrep procps" "flock util-linux" "python3 python3" "jq jq"
)
ensure_tools() {
  local pair missing=()
  for pair in "${TOOLS[@]}"; do
    command -v "${pair% *}" >/dev/null || missing+=("${pair#* }")
  done
  [ -f /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
  [ "${#missing[@]}" -eq 0 ] || apt_install "${missing[@]}"
}

# A Python 3.11 interpreter that can make virtualenvs (Debian's needs python3.11-venv for
# ensurepip), by absolute path (never a pyenv shim: it costs 150 ms per spawn). The system's
# first: the service user and the sandboxes must be able to run it (a pyenv under /root is
# closed to them).
find_python() {
  local candidate
  for candidate in "${ATTUNE_PYTHON:-}" /usr/bin/python3.11 /usr/local/bin/python3.11 \
                   /root/.pyenv/versions/3.11*/bin/python3.11; do
    [ -n "$candidate" ] && [ -x "$candidate" ] && "$candidate" -c 'import ensurepip' 2>/dev/null \
      && { echo "$candidate"; return; }
  done
  apt_install python3.11 python3.11-venv python3.11-dev
  /usr/bin/python3.11 -c 'import ensurepip' || die "python3.11 and python3.11-venv did not install"
  echo /usr/bin/python3.11
}

ensure_venv() {
  local stamp="$VENV/.installed" python
  python="$(find_python)"
  # Made again when it is broken (no pip) or built on another interpreter than the one chosen.
  if [ ! -x "$PY" ] || ! "$PY" -m pip --version >/dev/null 2>&1 \
     || ! grep -qx "home = $(dirname "$python")" "$VENV/pyvenv.cfg"; then
    say "creating virtualenv $VENV with $python"
    rm -rf "$VENV"
    "$python" -m venv "$VENV"
  fi
  if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
    say "installing Attune and its pinned dependencies"
    "$PY" -m pip install -q --disable-pip-version-check "setuptools<81" 2>&1 | grep -v 'is ignored' || true
    "$PY" -m pip install -q --disable-pip-version-check -e "$ROOT[test]" 2>&1 | grep -v 'is ignored' || true
    "$PY" -c "import nameko, flask, sqlalchemy" || die "the Python install failed"
    touch "$stamp"
  fi
}

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
pg_version() { ls /etc/postgresql 2>/dev/null | sort -V | tail -n1; }

ensure_postgres() {
  if ! command -v pg_ctlcluster >/dev/null && ! command -v psql >/dev/null; then
    apt_install postgresql postgresql-client
  fi
  if ! pg_up; then
    say "starting PostgreSQL"
    local version
    version="$(pg_version)"
    [ -n "$version" ] || die "PostgreSQL is installed but has no cluster in /etc/postgresql"
    need_root_or_sudo "starting PostgreSQL"
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 1 60); do pg_up && break; sleep 0.5; done
    pg_up || die "PostgreSQL did not come up on 127.0.0.1:5432"
  fi
}

# Five platform processes with pooled connections, plus an e2e platform and the tests' own pools
# during the suite: Debian's default of 100 connections is too tight. Raised once, idempotently.
ensure_pg_connections() {
  local wanted=300 current version
  current="$(psql_super -c 'show max_connections')"
  if [ "${current:-0}" -lt "$wanted" ]; then
    say "raising PostgreSQL max_connections from $current to $wanted (restarts PostgreSQL)"
    psql_super -c "alter system set max_connections = $wanted"
    version="$(pg_version)"
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main restart
    for _ in $(seq 1 60); do pg_up && break; sleep 0.5; done
    pg_up || die "PostgreSQL did not come back after the restart"
  fi
}

# psql as the postgres superuser, from / (the checkout may be unreadable to that user).
psql_super() {
  need_root_or_sudo "creating the database"
  if [ -z "$SUDO" ]; then (cd / && runuser -u postgres -- psql -qtAX "$@")
  else (cd / && sudo -u postgres psql -qtAX "$@"); fi
}

# The password of a key of the keys file (made by `attune keys` in ensure_keys).
key_value() { sed -n "s/^$1=//p" "$KEYS_FILE"; }

# The attune role (CREATEDB so the e2e harness can recreate its own database), its password the
# generated one of the keys file, given on standard input (never in a command line).
ensure_database() {
  local db="$1"
  if [ "$(psql_super -c "select 1 from pg_roles where rolname='attune'")" != "1" ]; then
    say "creating PostgreSQL role attune"
    psql_super -c "create role attune login createdb"
  fi
  printf "alter role attune password '%s';\n" "$(key_value ATTUNE_DATABASE_PASSWORD)" | psql_super
  if [ "$(psql_super -c "select 1 from pg_database where datname='$db'")" != "1" ]; then
    say "creating database $db"
    psql_super -c "create database $db owner attune"
  fi
}

rabbit_up() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }

# RabbitMQ's AMQP listener on loopback only: nothing of the platform's infrastructure answers
# on the host's other addresses (Debian's default is all of them), which an operator may open
# to sandboxes for a service of theirs (PostgreSQL's Debian default is localhost already).
# epmd and the Erlang distribution port are left as configured: moving them can change the
# node's name and so its data. Returns 0 when the configuration had to change.
RABBITMQ_CONF_DIR="${RABBITMQ_CONF_DIR:-/etc/rabbitmq}"
RABBITMQ_LINES=(
  "rabbitmq.conf|listeners.tcp.local = 127.0.0.1:5672"
)
rabbitmq_on_loopback() {
  local entry file line changed=1
  for entry in "${RABBITMQ_LINES[@]}"; do
    file="$RABBITMQ_CONF_DIR/${entry%%|*}" line="${entry#*|}"
    if ! grep -qxF "$line" "$file" 2>/dev/null; then
      say "RabbitMQ on loopback only: $line ($file)"
      [ "${line#listeners.tcp}" = "$line" ] || $SUDO sed -i '/^listeners\.tcp\./d' "$file" 2>/dev/null || true
      printf '%s\n' "$line" | $SUDO tee -a "$file" >/dev/null
      changed=0
    fi
  done
  return "$changed"
}

ensure_rabbitmq() {
  command -v rabbitmq-server >/dev/null || [ -x /usr/sbin/rabbitmq-server ] || apt_install rabbitmq-server
  need_root_or_sudo "configuring RabbitMQ"
  if rabbitmq_on_loopback && rabbit_up; then
    say "restarting RabbitMQ on loopback"
    $SUDO rabbitmqctl -q stop >/dev/null 2>&1 || true
    for _ in $(seq 1 60); do rabbit_up || break; sleep 0.5; done
  fi
  if ! rabbit_up; then
    say "starting RabbitMQ"
    need_root_or_sudo "starting RabbitMQ"
    $SUDO rabbitmq-server -detached || true
    for _ in $(seq 1 120); do rabbit_up && break; sleep 0.5; done
    rabbit_up || die "RabbitMQ did not come up on 127.0.0.1:5672"
  fi
  need_root_or_sudo "configuring RabbitMQ"
  $SUDO rabbitmqctl -q await_startup >/dev/null 2>&1 || true
}

# The broker and database faults of bench/chaos.py: stop, then start and wait as above.
restart_rabbitmq() {
  need_root_or_sudo "restarting RabbitMQ"
  $SUDO rabbitmqctl -q stop >/dev/null 2>&1 || true
  for _ in $(seq 1 60); do rabbit_up || break; sleep 0.5; done
  ensure_rabbitmq
}

restart_postgres() {
  need_root_or_sudo "restarting PostgreSQL"
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$(pg_version)" main stop || true
  ensure_postgres
}

# The platform's own RabbitMQ user, its password the generated one (on standard input).
ensure_rabbitmq_user() {
  local verb=add_user
  $SUDO rabbitmqctl -q list_users 2>/dev/null | cut -f1 | grep -qx attune && verb=change_password
  key_value ATTUNE_AMQP_PASSWORD | tr -d '\n' | $SUDO rabbitmqctl -q "$verb" attune >/dev/null
}

# A vhost for the attune user alone (guest, if the broker still has it, gets no permission).
# Delete and re-add a vhost: nothing of an earlier run survives in it (queues declared with
# other arguments, say: the broker refuses to redeclare those).
renew_vhost() {
  $SUDO rabbitmqctl -q delete_vhost "$1" >/dev/null 2>&1 || true
  ensure_vhost "$1"
}

ensure_vhost() {
  local vhost="$1"
  if ! $SUDO rabbitmqctl -q list_vhosts 2>/dev/null | grep -qx "$vhost"; then
    say "creating RabbitMQ vhost $vhost"
    $SUDO rabbitmqctl -q add_vhost "$vhost" >/dev/null
  fi
  $SUDO rabbitmqctl -q set_permissions -p "$vhost" attune '.*' '.*' '.*' >/dev/null
  $SUDO rabbitmqctl -q clear_permissions -p "$vhost" guest >/dev/null 2>&1 || true
}

ensure_node() {
  command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
}

# The headless browser of tests/e2e/browser/ (playwright drives it by executable_path; playwright's
# own browser downloads are never used).
ensure_browser() {
  command -v chromium >/dev/null || apt_install chromium
}

# The Docker Engine of the container runner (scripts/docker.sh: install, start, local image).
# Exported so the services and the tests find it; a failure stops the command (never a skip).
ensure_docker() {
  local line
  line="$("$ROOT/scripts/docker.sh" start)" || die "the Docker engine could not start (scripts/docker.sh)"
  eval "$line"
  export DOCKER_HOST
}

# What the sandbox of tenant code needs (runners/sandbox.py): bubblewrap for the namespaces,
# slirp4netns for outbound traffic, newuidmap/newgidmap (uidmap) for an unprivileged service
# user, ip (iproute2) for the routes inside and setfacl (acl) to open /dev/net/tun to that user.
SANDBOX_TOOLS=("bwrap bubblewrap" "slirp4netns slirp4netns" "newuidmap uidmap" "ip iproute2"
               "setfacl acl" "setpriv util-linux" "prlimit util-linux" "bash bash")
ensure_sandbox() {
  local pair missing=()
  for pair in "${SANDBOX_TOOLS[@]}"; do
    command -v "${pair% *}" >/dev/null || missing+=("${pair#* }")
  done
  [ "${#missing[@]}" -eq 0 ] || apt_install "${missing[@]}"
}

# Started by root, the services run as a system user of their own (never root): made here with
# the subordinate ids its sandboxes map to and the right to open /dev/net/tun (slirp4netns).
# An ordinary user runs them as itself: nothing to do.
ensure_service_user() {
  [ "$(id -u)" -eq 0 ] || return 0
  if ! id "$SERVICE_USER" >/dev/null 2>&1; then
    say "creating system user $SERVICE_USER (the services run as it)"
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin "$SERVICE_USER"
  fi
  grep -q "^$SERVICE_USER:" /etc/subuid 2>/dev/null || usermod --add-subuids "$SUBORDINATE_IDS" "$SERVICE_USER"
  grep -q "^$SERVICE_USER:" /etc/subgid 2>/dev/null || usermod --add-subgids "$SUBORDINATE_IDS" "$SERVICE_USER"
  if [ -e /dev/net/tun ]; then setfacl -m "u:$SERVICE_USER:rw" /dev/net/tun; fi
  runuser -u "$SERVICE_USER" -- test -r "$ROOT/pyproject.toml" \
    || die "the service user $SERVICE_USER cannot read $ROOT: keep the checkout where other users can (say /srv or /opt), not under /root"
}

# The keys file (JWT secret, encryption keys, PostgreSQL and RabbitMQ passwords), mode 600,
# the service user's: made once, completed when a key is missing.
ensure_keys() {
  "$VENV/bin/attune" keys --config "${ATTUNE_CONFIG:-$ROOT/nameko.yaml}" >/dev/null
}

# Everything both commands need: tools, venv, service user, keys, PostgreSQL, RabbitMQ, node,
# Docker, databases and vhosts.
ensure_infrastructure() {
  ensure_tools
  ensure_sandbox
  ensure_venv
  ensure_service_user
  ensure_keys
  ensure_postgres
  ensure_pg_connections
  ensure_rabbitmq
  ensure_rabbitmq_user
  ensure_node
  ensure_docker
  ensure_database attune
  ensure_database attune_e2e
  ensure_database attune_test
  ensure_vhost attune
  ensure_vhost attune_e2e
  ensure_vhost attune_test
}
