"""The hostile tenant (issue #14): a freshly signed-up tenant's python, node and shell actions try
to escape their sandbox — read the platform's keys, another tenant's running secrets or pack,
run as root, reach PostgreSQL, RabbitMQ or the Docker engine, write into the platform's
virtualenv or checkout, kill the platform, exhaust processes, memory or disk. Each attempt fails
with the evidence the action itself reports (ENOENT, EROFS, ECONNREFUSED...) or the error the
run ends with, while the platform stays healthy and the tenant's next run succeeds
(docs/security.md "What a tenant's code cannot do").

Probes open connections only to addresses of this machine: loopback and its own addresses.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import textwrap
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from nameko_services.config import keys_path
from tests.support.e2e import PROJECT_ROOT, ApiClient, wait_for_execution, wait_until
from tests.support.network import counting_server, own_addresses
from tests.support.pack_envs import execute, register_folder, start

RUNNERS = ("python", "node", "shell")
SERVICES = ("gateway", "executor", "worker", "sensor", "notifier")
# The infrastructure's programs (the services' own command lines are read from the host).
INFRASTRUCTURE = ("postgres", "beam.smp", "dockerd", "slirp4netns", "nameko run")
# A connection the sandbox did not get: refused by its own loopback, routed nowhere, timed out.
NOT_CONNECTED = {"ECONNREFUSED", "EACCES", "ENETUNREACH", "EHOSTUNREACH", "ETIMEDOUT", "EPERM"}
# strerror text (what bash and coreutils print) → errno name (what python and node report).
ERRNO_BY_TEXT = {os.strerror(code): name for code, name in errno.errorcode.items()}
ERRNO_BY_TEXT["Connection timed out"] = "ETIMEDOUT"

# -- the probes: each prints `PROBE <label> <outcome>` lines (an errno name, or `ok`) --------

READ = {
    # Read each of `paths` (newline-separated) and print what came back; then every /proc
    # environ and cmdline the sandbox shows, and its own environ (which must be readable).
    "python": """
        import errno, glob, os

        def read(path):
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            try:
                return os.read(fd, 1 << 20)
            finally:
                os.close(fd)

        def run(paths):
            for path in paths.split("\\n"):
                try:
                    data = read(path)
                    print(f"PROBE\\t{path}\\tok\\n{data.decode(errors='replace')}")
                except OSError as exc:
                    print(f"PROBE\\t{path}\\t{errno.errorcode[exc.errno]}")
            for path in sorted(glob.glob("/proc/[0-9]*/environ")
                               + glob.glob("/proc/[0-9]*/cmdline")):
                try:
                    print(path, read(path).decode(errors="replace"))
                except OSError as exc:
                    print(path, exc)
            own = read("/proc/self/environ")
            print(f"PROBE\\town-environ\\t{'ok' if b'PATH=' in own else 'missing'}")
    """,
    "node": """
        const fs = require('fs');
        const read = (path) => {
          const fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
          try {
            const buffer = Buffer.alloc(1 << 20);
            return buffer.subarray(0, fs.readSync(fd, buffer, 0, buffer.length, null));
          } finally { fs.closeSync(fd); }
        };
        module.exports = { run: async ({ paths }) => {
          for (const path of paths.split('\\n')) {
            try { console.log(`PROBE\\t${path}\\tok\\n${read(path)}`); }
            catch (e) { console.log(`PROBE\\t${path}\\t${e.code}`); }
          }
          for (const pid of fs.readdirSync('/proc').filter((n) => /^\\d+$/.test(n))) {
            for (const name of ['environ', 'cmdline']) {
              try { console.log(`/proc/${pid}/${name}`, read(`/proc/${pid}/${name}`).toString()); }
              catch (e) { console.log(`/proc/${pid}/${name}`, e.code); }
            }
          }
          const own = read('/proc/self/environ').toString();
          console.log(`PROBE\\town-environ\\t${own.includes('PATH=') ? 'ok' : 'missing'}`);
        } };
    """,
    "shell": """
        printf '%s\\n' "$ATTUNE_PARAM_PATHS" | while IFS= read -r path; do
          if out=$(timeout 5 cat -- "$path" 2>&1); then
            printf 'PROBE\\t%s\\tok\\n%s\\n' "$path" "$out"
          else
            printf 'PROBE\\t%s\\t%s\\n' "$path" "${out##*: }"
          fi
        done 2>/dev/null
        for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline; do
          printf '%s ' "$f"; timeout 5 tr '\\0' ' ' < "$f"; echo
        done
        grep -qa PATH= /proc/self/environ && printf 'PROBE\\town-environ\\tok\\n'
    """,
}

WRITE = {
    # Create each of `paths` (newline-separated) with a line of python in it.
    "python": """
        import errno

        def run(paths):
            for path in paths.split("\\n"):
                try:
                    with open(path, "x") as handle:
                        handle.write("import os\\n")
                    print(f"PROBE\\t{path}\\tok")
                except OSError as exc:
                    print(f"PROBE\\t{path}\\t{errno.errorcode[exc.errno]}")
    """,
    "node": """
        const fs = require('fs');
        module.exports = { run: async ({ paths }) => {
          for (const path of paths.split('\\n')) {
            try {
              fs.writeFileSync(path, 'import os\\n', { flag: 'wx' });
              console.log(`PROBE\\t${path}\\tok`);
            }
            catch (e) { console.log(`PROBE\\t${path}\\t${e.code}`); }
          }
        } };
    """,
    "shell": """
        printf '%s\\n' "$ATTUNE_PARAM_PATHS" | while IFS= read -r path; do
          if out=$( (set -C; printf 'import os\\n' > "$path") 2>&1); then
            printf 'PROBE\\t%s\\tok\\n' "$path"
          else
            printf 'PROBE\\t%s\\t%s\\n' "$path" "${out##*: }"
          fi
        done
    """,
}

CONNECT = {
    # Connect to each of `targets` ("label host:port" or "label unix:/path" lines), then set
    # `key` to `value` in the datastore through the SDK (the API socket) and read it back.
    "python": """
        import errno, socket
        import attune

        def run(targets, key, value):
            for line in targets.split("\\n"):
                label, _, where = line.partition(" ")
                if where.startswith("unix:"):
                    sock, address = socket.socket(socket.AF_UNIX), where[5:]
                else:
                    host, _, port = where.rpartition(":")
                    sock, address = socket.socket(), (host, int(port))
                sock.settimeout(5)
                try:
                    sock.connect(address)
                    outcome = "connected"
                except TimeoutError:
                    outcome = "ETIMEDOUT"
                except OSError as exc:
                    outcome = errno.errorcode.get(exc.errno, str(exc))
                finally:
                    sock.close()
                print(f"PROBE\\t{label}\\t{outcome}")
            attune.datastore.set(key, value)
            got = attune.datastore.get(key)
            print(f"PROBE\\tdatastore\\t{'ok' if got == value else repr(got)}")
    """,
    "node": """
        const net = require('net');
        const attune = require('attune');
        const attempt = (where) => new Promise((resolve) => {
          const at = where.lastIndexOf(':');
          const options = where.startsWith('unix:') ? { path: where.slice(5) }
            : { host: where.slice(0, at), port: Number(where.slice(at + 1)) };
          const sock = net.connect(options);
          sock.setTimeout(5000, () => { sock.destroy(); resolve('ETIMEDOUT'); });
          sock.on('connect', () => { sock.destroy(); resolve('connected'); });
          sock.on('error', (e) => resolve(e.code));
        });
        module.exports = { run: async ({ targets, key, value }) => {
          for (const line of targets.split('\\n')) {
            const space = line.indexOf(' ');
            const outcome = await attempt(line.slice(space + 1));
            console.log(`PROBE\\t${line.slice(0, space)}\\t${outcome}`);
          }
          await attune.datastore.set(key, value);
          const got = await attune.datastore.get(key);
          console.log(`PROBE\\tdatastore\\t${got === value ? 'ok' : JSON.stringify(got)}`);
        } };
    """,
    "shell": """
        document=$(cat)
        printf '%s\\n' "$ATTUNE_PARAM_TARGETS" | while read -r label where; do
          case $where in
            unix:*) if [ -e "${where#unix:}" ]; then
                      curl -s --max-time 5 --unix-socket "${where#unix:}" http://x/ >/dev/null \\
                        && outcome=connected || outcome="Connection refused"
                    else outcome="No such file or directory"; fi ;;
            *) if out=$(timeout 5 bash -c 'exec 3<>"/dev/tcp/${1%:*}/${1##*:}"' _ "$where" 2>&1)
               then outcome=connected; else outcome=${out##*: }; fi ;;
          esac
          printf 'PROBE\\t%s\\t%s\\n' "$label" "${outcome:-Connection timed out}"
        done
        token=$(printf '%s' "$document" | jq -r .context.token)
        sock=$(printf '%s' "$document" | jq -r .context.api_socket)
        api() { curl -s --unix-socket "$sock" -H "Authorization: Bearer $token" \\
                  -H 'Content-Type: application/json' "$@"; }
        api -d "{\\"key\\": \\"$ATTUNE_PARAM_KEY\\", \\"value\\": \\"$ATTUNE_PARAM_VALUE\\"}" \\
            http://attune/api/v1/datastore >/dev/null
        got=$(api "http://attune/api/v1/datastore/$ATTUNE_PARAM_KEY" | jq -r .data.value)
        [ "$got" = "$ATTUNE_PARAM_VALUE" ] && got=ok
        printf 'PROBE\\tdatastore\\t%s\\n' "$got"
    """,
}

HOLD = {
    # Report its uid, then hold a child `sh -c 'sleep 60; :' <marker>` (found by the test on
    # the host, which ends it) and report its exit.
    "python": """
        import os, subprocess

        def run(marker):
            print(f"PROBE\\tuid\\t{os.getuid()}", flush=True)
            subprocess.run(["sh", "-c", "sleep 60; :", marker], check=False)
    """,
    "node": """
        const cp = require('child_process');
        module.exports = { run: async ({ marker }) => {
          console.log(`PROBE\\tuid\\t${process.getuid()}`);
          cp.spawnSync('sh', ['-c', 'sleep 60; :', marker], { stdio: 'ignore' });
        } };
    """,
    "shell": """
        printf 'PROBE\\tuid\\t%s\\n' "$(id -u)"
        sh -c 'sleep 60; :' "$ATTUNE_PARAM_MARKER"
        true
    """,
}

PROCESSES = {
    # List the processes it sees (uid and command line), then SIGKILL every process it may.
    "python": """
        import os, signal

        def run():
            for pid in sorted(p for p in os.listdir("/proc") if p.isdigit()):
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as handle:
                        command = handle.read().replace(b"\\0", b" ").decode(errors="replace")
                    with open(f"/proc/{pid}/status") as handle:
                        uid = next(l.split()[1] for l in handle if l.startswith("Uid:"))
                except OSError:
                    continue
                print(f"SEEN\\t{pid}\\t{uid}\\t{command}")
            try:
                os.kill(-1, signal.SIGKILL)
                print("PROBE\\tkill\\tok")
            except OSError as exc:
                print(f"PROBE\\tkill\\t{exc}")
    """,
    "node": """
        const fs = require('fs');
        module.exports = { run: async () => {
          for (const pid of fs.readdirSync('/proc').filter((n) => /^\\d+$/.test(n))) {
            try {
              const command = fs.readFileSync(`/proc/${pid}/cmdline`).toString()
                .replace(/\\0/g, ' ');
              const uid = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
                .match(/^Uid:\\s+(\\d+)/m)[1];
              console.log(`SEEN\\t${pid}\\t${uid}\\t${command}`);
            } catch (e) { /* it exited meanwhile */ }
          }
          try { process.kill(-1, 'SIGKILL'); console.log('PROBE\\tkill\\tok'); }
          catch (e) { console.log(`PROBE\\tkill\\t${e.code}`); }
        } };
    """,
    "shell": """
        for d in /proc/[0-9]*; do
          command=$(tr '\\0' ' ' < "$d/cmdline" 2>/dev/null) || continue
          uid=$(awk '/^Uid:/ {print $2}' "$d/status" 2>/dev/null) || continue
          printf 'SEEN\\t%s\\t%s\\t%s\\n' "${d#/proc/}" "$uid" "$command"
        done
        kill -9 -1 && printf 'PROBE\\tkill\\tok\\n'
        true
    """,
}

NORMAL = {
    "python": "def run():\n    return {'ok': True}\n",
    "node": "module.exports = { run: async () => ({ ok: true }) };\n",
    "shell": "echo '{\"ok\": true}'\n",
}


def probes(run: dict[str, Any]) -> dict[str, str]:
    """label → outcome of a probe run's `PROBE` lines, strerror texts as errno names."""
    found = {}
    for line in (run["result"].get("stdout") or "").splitlines():
        if line.startswith("PROBE\t"):
            _, label, outcome = line.split("\t", 2)
            found[label] = ERRNO_BY_TEXT.get(outcome.strip(), outcome.strip())
    return found


# -- the tenant and the platform --------------------------------------------------------------

@dataclass
class Tenant:
    """A freshly signed-up tenant with an empty pack for its actions."""

    api: ApiClient
    pack: str = field(default_factory=lambda: f"hostile_{uuid.uuid4().hex[:10]}")

    def __post_init__(self) -> None:
        self.api.data(self.api.post("/api/v1/packs",
                                    json={"ref": self.pack, "version": "1.0.0"}), 201)

    def action(self, runner: str, code: str, parameters: tuple[str, ...] = (),
               limits: dict[str, int] | None = None, timeout: int = 30,
               secrets: list[str] | None = None) -> str:
        """A new inline-code action of this tenant; its ref."""
        body: dict[str, Any] = {
            "pack": self.pack, "name": f"a_{uuid.uuid4().hex[:10]}", "runner_type": runner,
            "code": textwrap.dedent(code).lstrip(), "timeout": timeout,
            "parameters": {name: {"type": "string", "required": True} for name in parameters}}
        if limits:
            body["limits"] = limits
        if secrets:
            body["secrets"] = secrets
        return self.api.data(self.api.post("/api/v1/actions", json=body), 201)["ref"]

    def run(self, runner: str, code: str, parameters: dict[str, str] | None = None,
            **fields: Any) -> dict[str, Any]:
        """Run `code` as a new action with `parameters`; the finished execution."""
        ref = self.action(runner, code, tuple(parameters or {}), **fields)
        return execute(self.api, ref, parameters or {}, timeout=90)

    def next_run_succeeds(self, runner: str) -> None:
        """An ordinary action of the same runner still runs for this tenant."""
        run = self.run(runner, NORMAL[runner])
        outcome = (run["status"], run["result"].get("output"))
        assert outcome == ("succeeded", {"ok": True}), run["result"]


@dataclass
class Health:
    """The platform's services when a test began: at the end, the same processes and /health."""

    platform: Any
    started: dict[int, str | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.started = {pid: started_at(pid) for pid in service_pids(self.platform).values()}
        assert all(self.started.values()), self.started

    def assert_unharmed(self) -> None:
        now = {pid: started_at(pid) for pid in self.started}
        assert now == self.started, f"a service died or was replaced: {self.started} → {now}"
        response = requests.get(f"{self.platform.api_url}/health", timeout=10)
        assert response.status_code == 200 and response.json()["status"] == "ok", response.text


@pytest.fixture
def tenant(api: ApiClient) -> Tenant:
    """The hostile tenant: freshly signed up, nothing but an empty pack."""
    return Tenant(api)


@pytest.fixture
def health(platform: Any) -> Health:
    """The services as the test began, to show at its end that the attempt harmed none."""
    return Health(platform)


def service_pids(platform: Any) -> dict[str, int]:
    """The platform's service processes, from their pid files under the run dir."""
    pids = {}
    for name in SERVICES:
        path = platform.run_dir / "pids" / f"{name}.pid"
        if path.is_file():
            pids[name] = int(path.read_text().split()[0])
    assert set(pids) == set(SERVICES), f"pid files under {platform.run_dir / 'pids'}: {pids}"
    return pids


def started_at(pid: int) -> str | None:
    """A process's start time (field 22 of /proc/<pid>/stat); None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (FileNotFoundError, ProcessLookupError):
        return None


def proc_ids(pid: int, name: str = "Uid") -> list[int]:
    """The real, effective, saved and filesystem uids (or `Gid`s) of a host process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return [int(value) for value in line.split()[1:]]
    raise AssertionError(f"/proc/{pid}/status has no {name} line")


def parent_of(pid: int) -> int:
    """A host process's parent (the action holding a probe's child)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def process_with(marker: str) -> int | None:
    """The host pid of the process whose command line holds `marker`, if one runs."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    return int(entry.name)
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue
    return None


def hold(tenant: Tenant, runner: str, **fields: Any) -> tuple[dict[str, Any], int, str]:
    """Start HOLD as `tenant`'s action; (the execution, the host pid of its held child, the
    marker) once the child runs. `release(pid)` lets the run finish."""
    marker = f"attune-hold-{uuid.uuid4().hex}"
    ref = tenant.action(runner, HOLD[runner], ("marker",), **fields)
    execution = start(tenant.api, ref, {"marker": marker})
    pid = wait_until(lambda: process_with(marker), timeout=60,
                     message=f"the held child of execution {execution['id']} ({marker})")
    return execution, pid, marker


def release(pid: int) -> None:
    """End a held child (the test's own run started it)."""
    os.kill(pid, signal.SIGTERM)


def keys_files(platform: Any) -> list[Path]:
    """Every keys.env the running platform may have loaded its keys from."""
    candidates = [platform.run_dir / "keys.env", platform.run_dir.parent / "keys.env",
                  PROJECT_ROOT / ".attune" / "keys.env", keys_path()]  # $ATTUNE_KEYS_FILE
    return [path for path in dict.fromkeys(candidates) if path.is_file()]


def key_values(files: list[Path]) -> set[str]:
    """The secret values of keys.env files: each value, and each key of a key list alone."""
    values: set[str] = set()
    for path in files:
        for line in path.read_text().splitlines():
            name, sep, value = line.partition("=")
            if sep and not name.startswith("#"):
                values.add(value.strip())
                values.update(part.partition(":")[2] for part in value.strip().split(","))
    return {value for value in values if len(value) >= 16}


def everything(run: dict[str, Any]) -> str:
    """All a run returned (status, result, stdout, stderr, error), as one text."""
    return json.dumps(run)


# -- 1. the platform's keys ---------------------------------------------------------------------

@pytest.mark.parametrize("runner", RUNNERS)
def test_the_platforms_keys_are_out_of_reach(platform, tenant, health, runner):
    files = keys_files(platform)
    secrets = key_values(files)
    assert files and len(secrets) >= 2, f"the test found no keys to look for: {files}"
    services = service_pids(platform)
    paths = [*map(str, files), *(f"/proc/{pid}/environ" for pid in services.values())]
    run = tenant.run(runner, READ[runner], {"paths": "\n".join(paths)})
    assert run["status"] == "succeeded", run["result"]
    found = probes(run)
    assert found == {**dict.fromkeys(paths, "ENOENT"), "own-environ": "ok"}, found
    leaked = [value[:6] + "..." for value in secrets if value in everything(run)]
    assert not leaked, f"platform keys came back from the sandbox: {leaked}"
    health.assert_unharmed()
    tenant.next_run_succeeds(runner)



# -- 2. another tenant's run and its secret ----------------------------------------------------

VICTIM = """
    import hashlib, subprocess
    import attune

    def run(marker):
        value = attune.secrets.get("api_key")
        subprocess.run(["sh", "-c", "sleep 60; :", marker], check=False)
        return {"sha256": hashlib.sha256(value.encode()).hexdigest()}
"""


@pytest.mark.parametrize("runner", RUNNERS)
def test_another_tenants_running_action_and_its_stdin_are_invisible(make_api, tenant, health,
                                                                    runner):
    victim = Tenant(make_api())
    secret = f"victim-secret-{uuid.uuid4().hex}"
    victim.api.data(victim.api.post("/api/v1/secrets",
                                    json={"key": "api_key", "value": secret}), 201)
    marker = f"attune-victim-{uuid.uuid4().hex}"
    ref = victim.action("python", VICTIM, ("marker",), secrets=["api_key"])
    running = start(victim.api, ref, {"marker": marker})
    held = wait_until(lambda: process_with(marker), timeout=60, message="the victim to run")
    try:
        action = parent_of(held)  # the victim's action process, holding its stdin document
        paths = [f"/proc/{pid}/{name}" for pid in (action, held)
                 for name in ("fd/0", "environ", "cmdline", "status")]
        run = tenant.run(runner, READ[runner], {"paths": "\n".join(paths)})
    finally:
        release(held)
    assert run["status"] == "succeeded", run["result"]
    found = probes(run)
    assert found == {**dict.fromkeys(paths, "ENOENT"), "own-environ": "ok"}, found
    assert secret not in everything(run)
    assert marker not in everything(run)  # not even the victim's command line
    # The victim did have the secret, on stdin, while the hostile run looked.
    done = wait_for_execution(victim.api, running["id"])
    assert done["status"] == "succeeded", done
    assert done["result"]["output"] == {"sha256": hashlib.sha256(secret.encode()).hexdigest()}
    health.assert_unharmed()
    tenant.next_run_succeeds(runner)


# -- 3. uid --------------------------------------------------------------------------------------

@pytest.mark.parametrize("runner", RUNNERS)
def test_actions_run_neither_as_root_nor_as_the_services_user(platform, tenant, health, runner):
    services = {name: proc_ids(pid) for name, pid in service_pids(platform).items()}
    service_uids = {ids[0] for ids in services.values()}
    execution, held, _ = hold(tenant, runner)
    try:
        action = parent_of(held)
        seen = {"held child": (proc_ids(held), proc_ids(held, "Gid")),
                "action": (proc_ids(action), proc_ids(action, "Gid"))}
    finally:
        release(held)
    run = wait_for_execution(tenant.api, execution["id"])
    assert run["status"] == "succeeded", run["result"]
    inside = int(probes(run)["uid"])
    assert inside != 0
    for what, (uids, gids) in seen.items():
        assert len(set(uids)) == 1 and len(set(gids)) == 1, (what, uids, gids)
        assert uids[0] not in (0, *service_uids), (what, uids, services)
        assert gids[0] != 0, (what, gids)
    health.assert_unharmed()
    tenant.next_run_succeeds(runner)


# -- 4. the platform's infrastructure ----------------------------------------------------------

@pytest.mark.parametrize("runner", RUNNERS)
def test_postgresql_rabbitmq_docker_and_loopback_are_unreachable_while_the_api_socket_works(
    tenant, health, runner
):
    docker = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    assert docker.startswith("unix://"), docker
    addresses = own_addresses()
    with counting_server("127.0.0.1") as listener:
        targets = {"postgres-loopback": "127.0.0.1:5432", "rabbitmq-loopback": "127.0.0.1:5672",
                   "listener-loopback": f"127.0.0.1:{listener.port}",
                   **{f"postgres-{a}": f"{a}:5432" for a in addresses},
                   **{f"rabbitmq-{a}": f"{a}:5672" for a in addresses},
                   "docker": f"unix:{docker.removeprefix('unix://')}"}
        key, value = f"k{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
        run = tenant.run(runner, CONNECT[runner], {
            "targets": "\n".join(f"{label} {where}" for label, where in targets.items()),
            "key": key, "value": value})
        assert listener.accepted_after_probe() == 0
    assert run["status"] == "succeeded", run["result"]
    found = probes(run)
    assert set(found) == {*targets, "datastore"}, found
    assert found.pop("datastore") == "ok"
    assert found.pop("docker") == "ENOENT"
    assert found.pop("listener-loopback") == "ECONNREFUSED"  # the sandbox's own loopback
    assert all(outcome in NOT_CONNECTED for outcome in found.values()), found
    stored = tenant.api.data(tenant.api.get(f"/api/v1/datastore/{key}"), 200)
    assert stored["value"] == value
    health.assert_unharmed()


# -- 5. the platform's virtualenv and checkout -------------------------------------------------

@pytest.mark.parametrize("runner", RUNNERS)
def test_the_platforms_virtualenv_and_checkout_cannot_be_written(tenant, health, runner):
    name = f"hostile-{uuid.uuid4().hex[:8]}"
    site = next((PROJECT_ROOT / ".venv" / "lib").glob("python3*/site-packages"))
    targets = [site / f"{name}.pth",  # not in the sandbox at all
               PROJECT_ROOT / f"{name}.py",  # an empty read-only folder (a mount point's parent)
               PROJECT_ROOT / "runners" / "wrappers" / f"{name}.py",  # shown read-only
               PROJECT_ROOT / "runners" / "sdk" / "python" / "attune" / f"{name}.py"]
    try:
        run = tenant.run(runner, WRITE[runner], {"paths": "\n".join(map(str, targets))})
        assert run["status"] == "succeeded", run["result"]
        found = probes(run)
        # A checkout under /tmp (a clone made there) lies, inside, on the run's own /tmp: the
        # write lands there. Either way nothing reaches the host (the last assertion).
        at_root = "ok" if PROJECT_ROOT.is_relative_to("/tmp") else "EROFS"
        assert found == {str(targets[0]): "ENOENT", str(targets[1]): at_root,
                         str(targets[2]): "EROFS", str(targets[3]): "EROFS"}, found
        assert [t for t in targets if t.exists()] == []
    finally:
        for target in targets:
            target.unlink(missing_ok=True)
    health.assert_unharmed()
    tenant.next_run_succeeds(runner)


# -- 6. the platform's processes ---------------------------------------------------------------

@pytest.mark.parametrize("runner", RUNNERS)
def test_a_run_sees_and_signals_only_its_own_sandbox(platform, tenant, health, runner):
    platform_commands = [
        Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        for pid in service_pids(platform).values()]
    run = tenant.run(runner, PROCESSES[runner])
    assert run["status"] == "succeeded", run["result"]
    assert probes(run)["kill"] == "ok"  # kill(-1, SIGKILL) did signal something: its own
    seen = [line.split("\t", 3)[1:] for line in run["result"]["stdout"].splitlines()
            if line.startswith("SEEN\t")]
    assert 1 <= len(seen) <= 8, seen
    assert {uid for _, uid, _ in seen} <= {"1000", "65534"}, seen
    assert not [c for _, _, c in seen
                if any(p in c for p in (*platform_commands, *INFRASTRUCTURE))], seen
    health.assert_unharmed()
    tenant.next_run_succeeds(runner)


# -- 7. another tenant's pack --------------------------------------------------------------------

@pytest.mark.parametrize("runner", RUNNERS)
def test_another_tenants_pack_files_cannot_be_read(make_api, tenant, health, runner, tmp_path):
    other = make_api()
    secret = f"pack-secret-{uuid.uuid4().hex}"
    folder = tmp_path / "private"
    (folder / "actions").mkdir(parents=True)
    (folder / "pack.yaml").write_text("ref: private\nversion: 1.0.0\n")
    (folder / "actions" / "hello.yaml").write_text(
        "name: hello\nrunner_type: shell\nentry_point: actions/hello.sh\n")
    (folder / "actions" / "hello.sh").write_text(f"echo {secret}\n")
    pack = register_folder(other, folder)
    source = Path(pack["source_path"])
    assert (source / "actions" / "hello.sh").read_text() == f"echo {secret}\n"  # on the host
    paths = [str(source / "actions" / "hello.sh"), str(source / "pack.yaml")]
    run = tenant.run(runner, READ[runner], {"paths": "\n".join(paths)})
    assert run["status"] == "succeeded", run["result"]
    assert probes(run) == {**dict.fromkeys(paths, "ENOENT"), "own-environ": "ok"}
    assert secret not in everything(run)
    health.assert_unharmed()


# -- 8. processes, memory and disk -------------------------------------------------------------

EXHAUST = {
    "fork bomb": {
        "python": """
            import os

            def run():
                while True:
                    os.fork()
        """,
        "node": """
            const cp = require('child_process');
            module.exports = { run: async () => {
              for (;;) {
                const child = cp.spawn('sleep', ['60'], { stdio: 'ignore' });
                await new Promise((spawned, failed) => {
                  child.on('spawn', spawned);
                  child.on('error', failed);
                });
              }
            } };
        """,
        "shell": "while :; do sleep 60 & done\n",
    },
    "memory hog": {
        "python": """
            def run():
                hoard = []
                while True:
                    hoard.append(bytearray(8 * 1024 * 1024))
        """,
        "node": """
            module.exports = { run: async () => {
              const hoard = [];
              for (;;) hoard.push(new Array(1 << 20).fill(0.5));
            } };
        """,
        "shell": "head -c 2G /dev/zero | tail -n 1 >/dev/null\n",
    },
    "disk filler": {
        # Write one file in `where` (tmp: /tmp, else home) until something stops it.
        "python": """
            import os

            def run(where):
                folder = os.environ["TMPDIR" if where == "tmp" else "HOME"]
                with open(os.path.join(folder, "filler"), "wb") as handle:
                    while True:
                        handle.write(b"x" * (1 << 20))
                        handle.flush()
        """,
        "node": """
            const fs = require('fs');
            const path = require('path');
            module.exports = { run: async ({ where }) => {
              const folder = process.env[where === 'tmp' ? 'TMPDIR' : 'HOME'];
              const fd = fs.openSync(path.join(folder, 'filler'), 'w');
              const chunk = Buffer.alloc(1 << 20, 120);
              for (;;) fs.writeSync(fd, chunk);
            } };
        """,
        "shell": """
            if [ "$ATTUNE_PARAM_WHERE" = tmp ]; then folder=$TMPDIR; else folder=$HOME; fi
            dd if=/dev/zero of="$folder/filler" bs=1M
        """,
    },
    "file hoarder": {
        "python": """
            def run():
                hoard = []
                while True:
                    hoard.append(open("/dev/null"))
        """,
        "node": """
            const fs = require('fs');
            module.exports = { run: async () => {
              for (;;) fs.openSync('/dev/null', 'r');
            } };
        """,
        "shell": "while :; do exec {fd}</dev/null || exit 1; done\n",
    },
}
# Small limits, each under the operator's maximum, and the message naming the one exceeded.
EXHAUST_CASES = [
    ("fork bomb", {"processes": 16}, {}, "process limit (16 processes) exceeded"),
    ("memory hog", {"memory_mb": 256}, {}, "memory limit (256 MB) exceeded"),
    ("disk filler", {"tmp_mb": 8}, {"where": "tmp"}, "disk space limit (8 MB"),
    ("disk filler", {"tmp_mb": 8}, {"where": "home"}, "disk space limit (8 MB"),
    ("disk filler", {"file_size_mb": 4}, {"where": "tmp"}, "file size limit (4 MB) exceeded"),
    ("file hoarder", {"open_files": 32}, {}, "open files limit (32 files) exceeded"),
]


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize(("attempt", "limits", "parameters", "message"), EXHAUST_CASES,
                         ids=["fork_bomb", "memory_hog", "tmp_filler", "home_filler", "big_file",
                              "file_hoarder"])
def test_exhausting_a_limit_fails_the_run_as_resource_limit_and_the_next_run_succeeds(
    tenant, health, runner, attempt, limits, parameters, message
):
    run = tenant.run(runner, EXHAUST[attempt][runner], parameters, limits=limits, timeout=10)
    assert run["status"] == "failed", run["result"]
    error = run["result"]["error"]
    assert error["type"] == "resource_limit", run["result"]
    assert message in error["message"], run["result"]
    health.assert_unharmed()
    tenant.next_run_succeeds(runner)
