"""Typed, validated view of the ATTUNE section of nameko.yaml."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runners.container_policy import ContainerPolicy, check_user, memory_bytes
from runners.destinations import DestinationPolicy
from runners.sandbox import LIMIT_KEYS, Limits

from . import supervision
from .backlog import BacklogSettings
from .config_values import bounded, flag, reject_unknown
from .errors import ConfigurationError
from .live_output import LiveOutputSettings
from .paths import PROJECT_ROOT
from .presence import NewsSettings
from .retention import RetentionSettings


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """ATTUNE.worker. How many runs one worker process takes at once is nameko's
    `max_workers`; more at once come from more worker replicas (ATTUNE.supervisor)."""

    max_output_size_bytes: int = 1024 * 1024
    default_timeout_seconds: float = 600.0
    cancel_grace_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class BucketSettings:
    """One token bucket: `burst` tokens at most, refilled at `rate` tokens per second."""

    rate: float
    burst: int


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    """ATTUNE.rate_limit: per user, per admin, per webhook trigger, per failed-login name and
    per login client address."""

    enabled: bool = True
    user: BucketSettings = BucketSettings(rate=50.0, burst=100)
    admin: BucketSettings = BucketSettings(rate=200.0, burst=400)
    webhook: BucketSettings = BucketSettings(rate=500.0, burst=1000)
    login_failures: BucketSettings = BucketSettings(rate=0.2, burst=10)
    login_address: BucketSettings = BucketSettings(rate=1.0, burst=20)

    @classmethod
    def from_mapping(cls, section: dict[str, Any]) -> RateLimitSettings:
        """Parse the block; an unknown key or a non-positive number fails naming it."""
        default = cls()
        buckets = {"user", "admin", "webhook", "login_failures", "login_address"}
        reject_unknown(section, buckets | {"enabled"}, "rate_limit")
        values: dict[str, Any] = {"enabled": flag(section.get("enabled", True))}
        for name in sorted(buckets):
            given = dict(section.get(name) or {})
            fallback = getattr(default, name)
            reject_unknown(given, {"rate", "burst"}, f"rate_limit.{name}")
            try:
                bucket = BucketSettings(rate=float(given.get("rate", fallback.rate)),
                                        burst=int(given.get("burst", fallback.burst)))
            except (TypeError, ValueError) as exc:
                raise ConfigurationError(f"bad value in ATTUNE.rate_limit.{name}: {exc}") from exc
            if bucket.rate <= 0 or bucket.burst < 1:
                raise ConfigurationError(
                    f"ATTUNE.rate_limit.{name} needs rate > 0 and burst >= 1"
                )
            values[name] = bucket
        return cls(**values)


MAX_GATEWAY_PROCESSES = 64


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """ATTUNE.gateway: how many processes serve the API port and socket (gateway/serve.py)."""

    processes: int = 1

    @classmethod
    def from_mapping(cls, section: dict[str, Any]) -> GatewaySettings:
        """Parse the block; an unknown key or a count outside 1..64 fails naming it."""
        reject_unknown(section, {"processes"}, "gateway")
        given = section.get("processes", cls().processes)
        if isinstance(given, str) and given.strip().isdigit():  # ${VAR:default} yields text
            processes = int(given)
        else:
            processes = given if type(given) is int else 0
        if not 1 <= processes <= MAX_GATEWAY_PROCESSES:
            raise ConfigurationError(f"ATTUNE.gateway.processes must be a whole number from 1 "
                                     f"to {MAX_GATEWAY_PROCESSES}, not {given!r}")
        return cls(processes=processes)


# Greenthreads of each gateway process's HTTP server (eventlet.wsgi `max_size`, gateway/serve.py):
# every request in flight holds one, a synchronous run (`?wait=`) for as long as it waits.
WSGI_GREENTHREADS = 2000


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """ATTUNE.api: synchronous runs (`?wait=S` on POST /api/v1/executions and webhooks).

    `max_wait_seconds` is the most S may be; `max_waiters` how many requests may wait at once
    in one gateway process (beyond: 503), `tenant_max_waiters` how many of them one tenant may
    hold (beyond: 429). A waiting request holds one of the server's WSGI_GREENTHREADS, so
    `max_waiters` is bounded to half of them: the rest of the API is always served.
    """

    max_wait_seconds: float = 60.0
    max_waiters: int = 500
    tenant_max_waiters: int = 100

    @classmethod
    def from_mapping(cls, section: Mapping[str, Any]) -> ApiSettings:
        """Parse the block; an unknown key or a value out of bounds fails naming it."""
        reject_unknown(section, cls.__dataclass_fields__, "api")
        default = cls()
        max_waiters = int(bounded(section, "max_waiters", default.max_waiters, "api",
                                  minimum=1, maximum=WSGI_GREENTHREADS // 2, whole=True))
        return cls(
            max_wait_seconds=bounded(section, "max_wait_seconds", default.max_wait_seconds,
                                     "api", minimum=0.001, maximum=3600),
            max_waiters=max_waiters,
            tenant_max_waiters=int(bounded(section, "tenant_max_waiters",
                                           min(default.tenant_max_waiters, max_waiters), "api",
                                           minimum=1, maximum=max_waiters, whole=True)),
        )


@dataclass(frozen=True, slots=True)
class SupervisorSettings:
    """ATTUNE.supervisor: how many processes of each service `attune up` runs on this host,
    whether its supervisor restarts one that fails, and the longest pause between restarts
    (docs/deploy.md "One host"). The gateway's count is ATTUNE.gateway.processes."""

    replicas: tuple[tuple[str, int], ...] = tuple((role, 1) for role in supervision.SERVICES)
    restart: bool = True
    max_backoff_seconds: float = 5.0
    # The port where the supervisor serves this host's metrics (a host without a gateway);
    # None: not served (the gateway's /metrics serves its own host's).
    metrics_port: int | None = None

    @classmethod
    def from_mapping(cls, section: dict[str, Any]) -> SupervisorSettings:
        """Parse the block; an unknown key, role or a bad count fails naming it."""
        reject_unknown(section, {"replicas", "restart", "max_backoff_seconds", "metrics_port"},
                       "supervisor")
        given = section.get("replicas") or {}
        if not isinstance(given, Mapping):
            raise ConfigurationError("ATTUNE.supervisor.replicas must map services to counts")
        reject_unknown(given, supervision.SERVICES, "supervisor.replicas")
        counts = dict(cls().replicas)
        counts.update({role: supervision.parse_count(value, f"ATTUNE.supervisor.replicas.{role}")
                       for role, value in given.items()})
        try:
            backoff = float(section.get("max_backoff_seconds", cls().max_backoff_seconds))
        except (TypeError, ValueError):
            backoff = 0.0
        if not 0 < backoff <= 300:
            raise ConfigurationError("ATTUNE.supervisor.max_backoff_seconds must be a number "
                                     "above 0 and at most 300")
        port = section.get("metrics_port")
        if port in (None, ""):
            port = None
        elif not (str(port).isdigit() and 0 < int(port) < 65536):
            raise ConfigurationError("ATTUNE.supervisor.metrics_port must be a port number "
                                     "(1..65535) or empty")
        return cls(replicas=tuple(counts.items()), restart=flag(section.get("restart", True)),
                   max_backoff_seconds=backoff,
                   metrics_port=int(port) if port is not None else None)


REGISTRATION_MODES = ("open", "closed")


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """ATTUNE.auth: whether anyone may sign up (`POST /auth/register`) or only an operator
    creates users (`attune create-user`); closed unless the configuration says otherwise."""

    registration: str = "closed"

    @property
    def registration_open(self) -> bool:
        return self.registration == "open"

    @classmethod
    def from_mapping(cls, section: dict[str, Any]) -> AuthSettings:
        """Parse the block; an unknown key or a registration other than open/closed fails."""
        reject_unknown(section, {"registration"}, "auth")
        given = section.get("registration", cls().registration)
        registration = given.strip().lower() if isinstance(given, str) else given
        if registration not in REGISTRATION_MODES:
            raise ConfigurationError(
                f"ATTUNE.auth.registration must be 'open' or 'closed', not {given!r}")
        return cls(registration=registration)


@dataclass(frozen=True, slots=True)
class HttpRunnerSettings:
    """ATTUNE.http_runner: `allow` opens internal destinations to http actions (security.md)."""

    policy: DestinationPolicy = field(default_factory=DestinationPolicy)

    @classmethod
    def from_mapping(cls, section: dict[str, Any]) -> HttpRunnerSettings:
        """Parse the block; an unknown key or a bad `allow` entry fails naming it."""
        reject_unknown(section, {"allow"}, "http_runner")
        allow = section.get("allow") or []
        if not isinstance(allow, list) or not all(isinstance(e, str) for e in allow):
            raise ConfigurationError("ATTUNE.http_runner.allow must be a list of strings")
        try:
            return cls(DestinationPolicy.from_entries(allow))
        except ValueError as exc:
            raise ConfigurationError(f"bad entry in ATTUNE.http_runner.allow: {exc}") from exc


NETWORK_MODES = ("outbound", "none")


def parse_limits(given: Mapping[str, Any], where: str, base: Limits) -> Limits:
    """`base` with the keys of `given` (memory_mb, cpu_seconds…) replaced; an unknown key or a
    value that is not a positive integer fails naming `where`."""
    unknown = set(given) - set(LIMIT_KEYS)
    if unknown:
        raise ConfigurationError(f"unknown key(s) in {where}: {sorted(unknown)}; "
                                 f"known: {', '.join(LIMIT_KEYS)}")
    values = {}
    for key, value in given.items():
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ConfigurationError(f"{where}.{key} must be a positive integer")
        try:
            number = int(value)
        except ValueError:
            raise ConfigurationError(f"{where}.{key} must be a positive integer") from None
        if number < 1:
            raise ConfigurationError(f"{where}.{key} must be a positive integer")
        values[key] = number
    return dataclasses.replace(base, **values)


@dataclass(frozen=True, slots=True)
class SandboxSettings:
    """ATTUNE.sandbox: what tenant code may use (docs/security.md). `limits` apply to every
    action, sensor and pack build; an action's own `limits:` may change them within
    `maximum`; `network` is the default of packs that do not say (pack.yaml `network:`)."""

    limits: Limits = field(default_factory=Limits)
    maximum: Limits = field(default_factory=lambda: Limits(
        memory_mb=4096, cpu_seconds=3600, processes=512, file_size_mb=1024, open_files=4096,
        tmp_mb=1024))
    max_timeout_seconds: float = 3600.0
    network: str = "outbound"
    allow_networks: tuple[str, ...] = ()

    @classmethod
    def from_mapping(cls, section: dict[str, Any]) -> SandboxSettings:
        """Parse the block; an unknown key or a bad value fails naming it."""
        known = {"limits", "maximum", "max_timeout_seconds", "network", "allow_networks"}
        reject_unknown(section, known, "sandbox")
        default = cls()
        limits = parse_limits(section.get("limits") or {}, "ATTUNE.sandbox.limits",
                              default.limits)
        maximum = parse_limits(section.get("maximum") or {}, "ATTUNE.sandbox.maximum",
                               default.maximum)
        above = [k for k in LIMIT_KEYS if (getattr(limits, k) or 0) > (getattr(maximum, k) or 0)]
        if above:
            raise ConfigurationError(f"ATTUNE.sandbox.limits exceed ATTUNE.sandbox.maximum: "
                                     f"{', '.join(above)}")
        network = str(section.get("network", default.network))
        if network not in NETWORK_MODES:
            raise ConfigurationError(f"ATTUNE.sandbox.network must be one of "
                                     f"{', '.join(NETWORK_MODES)}, not {network!r}")
        allow = section.get("allow_networks") or []
        if not isinstance(allow, list):
            raise ConfigurationError("ATTUNE.sandbox.allow_networks must be a list of CIDRs")
        for entry in allow:
            try:
                ipaddress.ip_network(str(entry), strict=False)
            except ValueError as exc:
                raise ConfigurationError(
                    f"bad entry in ATTUNE.sandbox.allow_networks: {exc}") from None
        try:
            timeout = float(section.get("max_timeout_seconds", default.max_timeout_seconds))
        except (TypeError, ValueError):
            raise ConfigurationError("ATTUNE.sandbox.max_timeout_seconds must be a number") \
                from None
        return cls(limits=limits, maximum=maximum, max_timeout_seconds=timeout,
                   network=network, allow_networks=tuple(str(a) for a in allow))

    def limits_for(self, asked: Mapping[str, Any] | None) -> Limits:
        """The defaults with an action's own `limits:`, each bounded by the maximum."""
        wanted = parse_limits(asked or {}, "limits", self.limits)
        bounded = {k: min(getattr(wanted, k), getattr(self.maximum, k))
                   for k in LIMIT_KEYS if getattr(wanted, k) is not None
                   and getattr(self.maximum, k) is not None}
        return dataclasses.replace(wanted, **bounded)


CONTAINER_KEYS = ("memory", "cpus")


def _container_resources(given: Any, where: str, base: tuple[str, float]) -> tuple[str, float]:
    """`{memory, cpus}` of ATTUNE.container.limits/maximum over `base`; fails naming `where`."""
    if not isinstance(given, Mapping):
        raise ConfigurationError(f"{where} must be a mapping of memory and cpus")
    unknown = set(given) - set(CONTAINER_KEYS)
    if unknown:
        raise ConfigurationError(f"unknown key(s) in {where}: {sorted(unknown)}; "
                                 f"known: {', '.join(CONTAINER_KEYS)}")
    memory, cpus = base
    if "memory" in given:
        memory = str(given["memory"]).strip()
        try:
            memory_bytes(memory)
        except ValueError:
            raise ConfigurationError(f"{where}.memory must be a size such as '256m', "
                                     f"not {given['memory']!r}") from None
    if "cpus" in given:
        value = given["cpus"]
        try:
            cpus = float(value) if not isinstance(value, bool) else -1.0
        except (TypeError, ValueError):
            cpus = -1.0
        if not 0 < cpus <= 64:
            raise ConfigurationError(f"{where}.cpus must be a number above 0 and at most 64, "
                                     f"not {value!r}")
    return memory, cpus


def parse_container(section: dict[str, Any]) -> ContainerPolicy:
    """ATTUNE.container: `limits` (defaults of `memory`/`cpus`), `maximum`, the `user`
    containers run as and `allow_image_user`; an unknown key or a bad value fails naming it."""
    reject_unknown(section, {"limits", "maximum", "user", "allow_image_user"}, "container")
    default = ContainerPolicy()
    memory, cpus = _container_resources(section.get("limits") or {}, "ATTUNE.container.limits",
                                        (default.memory, default.cpus))
    max_memory, max_cpus = _container_resources(
        section.get("maximum") or {}, "ATTUNE.container.maximum",
        (default.max_memory, default.max_cpus))
    above = [k for k, (a, b) in {"memory": (memory_bytes(memory), memory_bytes(max_memory)),
                                 "cpus": (cpus, max_cpus)}.items() if a > b]
    if above:
        raise ConfigurationError(f"ATTUNE.container.limits exceed ATTUNE.container.maximum: "
                                 f"{', '.join(above)}")
    try:
        user = check_user(str(section.get("user", default.user)))
    except ValueError as exc:
        raise ConfigurationError(f"ATTUNE.container.user {exc}") from None
    allow = section.get("allow_image_user", False)
    if isinstance(allow, str) and allow.strip().lower() in ("true", "false"):
        allow = allow.strip().lower() == "true"
    if not isinstance(allow, bool):
        raise ConfigurationError("ATTUNE.container.allow_image_user must be true or false")
    return ContainerPolicy(memory=memory, cpus=cpus, max_memory=max_memory, max_cpus=max_cpus,
                           user=user, allow_image_user=allow)


@dataclass(frozen=True, slots=True)
class PackSettings:
    """ATTUNE.packs: the server folders inside which a tenant may register a pack by path
    (`allowed_paths`, resolved with their links at start-up); none by default."""

    allowed_paths: tuple[Path, ...] = ()

    @classmethod
    def from_mapping(cls, section: dict[str, Any], root: Path = PROJECT_ROOT) -> PackSettings:
        """Parse the block: a list of folders, relative to `root` (the project) or absolute."""
        reject_unknown(section, {"allowed_paths"}, "packs")
        given = section.get("allowed_paths") or []
        if not isinstance(given, list) or not all(
            isinstance(p, str) and p.strip() and "\x00" not in p for p in given
        ):
            raise ConfigurationError("ATTUNE.packs.allowed_paths must be a list of folders "
                                     "(relative to the project root, or absolute)")
        return cls(tuple(Path(os.path.realpath(root / p.strip())) for p in given))

    def allows(self, path: str | Path, *also: Path) -> bool:
        """Does `path`, with its links and `..` resolved, lie in an allowed folder (or in one
        of `also`, resolved the same way)?"""
        real = Path(os.path.realpath(path))
        roots = (*self.allowed_paths, *(Path(os.path.realpath(p)) for p in also))
        return any(real == r or r in real.parents for r in roots)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a process needs to know, read once at start-up; a bad key fails loudly."""

    amqp_uri: str
    database_url: str
    jwt_secret: str
    encryption_keys: dict[str, bytes]
    active_key_id: str
    environment: str = "dev"
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    access_token_ttl_seconds: int = 3600
    refresh_token_ttl_seconds: int = 7 * 24 * 3600
    execution_token_ttl_seconds: int = 3600
    run_dir: Path = Path(".attune/dev")
    log_level: str = "INFO"
    rpc_timeout_seconds: float = 5.0
    webhook_max_body_bytes: int = 1024 * 1024
    # Loop protection: an event caused (through executions) by a chain deeper than this is refused.
    max_chain_depth: int = 10
    # The system user `attune up` runs the services as when started by root (never root itself).
    service_user: str = "attune"
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    gateway: GatewaySettings = field(default_factory=GatewaySettings)
    api: ApiSettings = field(default_factory=ApiSettings)

    supervisor: SupervisorSettings = field(default_factory=SupervisorSettings)
    rate_limit: RateLimitSettings = field(default_factory=RateLimitSettings)
    http_runner: HttpRunnerSettings = field(default_factory=HttpRunnerSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    packs: PackSettings = field(default_factory=PackSettings)
    sandbox: SandboxSettings = field(default_factory=SandboxSettings)
    container: ContainerPolicy = field(default_factory=ContainerPolicy)
    backlog: BacklogSettings = field(default_factory=BacklogSettings)
    live_output: LiveOutputSettings = field(default_factory=LiveOutputSettings)
    news: NewsSettings = field(default_factory=NewsSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def api_url(self) -> str:
        host = "127.0.0.1" if self.api_host in ("0.0.0.0", "::") else self.api_host
        return f"http://{host}:{self.api_port}"

    @classmethod
    def from_mapping(cls, config: dict[str, Any]) -> Settings:
        """Build from a loaded nameko config dict; raises ConfigurationError naming the bad key."""
        section = dict(config.get("ATTUNE") or {})
        worker = dict(section.pop("worker", None) or {})
        gateway = GatewaySettings.from_mapping(dict(section.pop("gateway", None) or {}))
        api = ApiSettings.from_mapping(dict(section.pop("api", None) or {}))

        supervisor = SupervisorSettings.from_mapping(dict(section.pop("supervisor", None) or {}))
        rate_limit = RateLimitSettings.from_mapping(dict(section.pop("rate_limit", None) or {}))
        http_runner = HttpRunnerSettings.from_mapping(
            dict(section.pop("http_runner", None) or {}))
        auth = AuthSettings.from_mapping(dict(section.pop("auth", None) or {}))
        packs = PackSettings.from_mapping(dict(section.pop("packs", None) or {}))
        sandbox = SandboxSettings.from_mapping(dict(section.pop("sandbox", None) or {}))
        container = parse_container(dict(section.pop("container", None) or {}))
        backlog = BacklogSettings.from_mapping(dict(section.pop("backlog", None) or {}))
        live_output = LiveOutputSettings.from_mapping(
            dict(section.pop("live_output", None) or {}))
        retention = RetentionSettings.from_mapping(dict(section.pop("retention", None) or {}))
        news = NewsSettings.from_mapping(dict(section.pop("news", None) or {}))

        def need(key: str, where: dict[str, Any] = section, prefix: str = "ATTUNE.") -> Any:
            value = where.get(key)
            if value in (None, ""):
                hint = (" (it comes from the keys file: $ATTUNE_KEYS_FILE or .attune/keys.env,"
                        " made by `attune keys`, readable by this user?)"
                        if key in ("jwt_secret", "encryption_keys") else "")
                raise ConfigurationError(
                    f"configuration key {prefix}{key} is missing or empty{hint}")
            return value

        amqp_uri = need("AMQP_URI", config, "")
        from .crypto import parse_keyring

        keyring, active = parse_keyring(str(need("encryption_keys")))
        jwt_secret = str(need("jwt_secret"))
        if len(jwt_secret) < 32:
            raise ConfigurationError("configuration key ATTUNE.jwt_secret must be >= 32 characters")
        known = {f.name for f in WorkerSettings.__dataclass_fields__.values()}
        reject_unknown(worker, known, "worker")
        try:
            return cls(
                amqp_uri=str(amqp_uri),
                database_url=str(need("database_url")),
                jwt_secret=jwt_secret,
                encryption_keys=keyring,
                active_key_id=active,
                environment=str(section.get("environment", "dev")),
                api_host=str(section.get("api_host", "127.0.0.1")),
                api_port=int(section.get("api_port", 8080)),
                access_token_ttl_seconds=int(section.get("access_token_ttl_seconds", 3600)),
                refresh_token_ttl_seconds=int(section.get("refresh_token_ttl_seconds", 604800)),
                execution_token_ttl_seconds=int(section.get("execution_token_ttl_seconds", 3600)),
                run_dir=Path(str(section.get("run_dir", ".attune/dev"))),
                log_level=str(section.get("log_level", "INFO")),
                rpc_timeout_seconds=float(section.get("rpc_timeout_seconds", 5)),
                webhook_max_body_bytes=int(section.get("webhook_max_body_bytes", 1048576)),
                max_chain_depth=int(section.get("max_chain_depth", 10)),
                service_user=str(section.get("service_user") or "attune"),
                worker=WorkerSettings(**worker),
                gateway=gateway,
                api=api,

                supervisor=supervisor,
                rate_limit=rate_limit,
                http_runner=http_runner,
                auth=auth,
                packs=packs,
                sandbox=sandbox,
                container=container,
                backlog=backlog,
                live_output=live_output,
                news=news,
                retention=retention,
                raw=config,
            )
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"bad value in ATTUNE configuration: {exc}") from exc
