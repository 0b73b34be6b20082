"""The schema as SQLAlchemy Core tables; alembic/versions holds the migrations that create it."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _id() -> Column:
    return Column("id", BigInteger, primary_key=True, autoincrement=True)


def _created() -> Column:
    return Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now())


def _updated() -> Column:
    return Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now())


def _tenant(nullable: bool = False) -> Column:
    return Column(
        "tenant_id", BigInteger, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=nullable
    )


tenants = Table(
    "tenants",
    metadata,
    _id(),
    Column("name", String(200), nullable=False, unique=True),
    _created(),
)

users = Table(
    "users",
    metadata,
    _id(),
    _tenant(),
    Column("username", String(200), nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),
    Column("role", String(20), nullable=False),
    _created(),
    # Access and refresh tokens issued before this are refused (logout, password change).
    Column("tokens_valid_after", DateTime(timezone=True)),
    CheckConstraint("role in ('admin','editor','executor','viewer')", name="role"),
)

# API keys for scripts and CI: only the SHA-256 of the key is kept (it is shown once, at
# creation); a key acts as its user with at most `role`.
api_keys = Table(
    "api_keys",
    metadata,
    _id(),
    _tenant(),
    Column("user_id", BigInteger, ForeignKey("users.id", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("name", String(200), nullable=False),
    Column("prefix", String(20), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("role", String(20), nullable=False),
    _created(),
    Column("expires_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    CheckConstraint("role in ('admin','editor','executor','viewer')", name="role"),
)

# Every pack's content once, named by its sha256: hosts fetch it from here (pack_store.py).
pack_archives = Table(
    "pack_archives",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("content", LargeBinary, nullable=False),
    Column("size", BigInteger, nullable=False),
    _created(),
    CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name="sha256"),
)

# System packs have tenant_id NULL; refs are unique per tenant (and once among system packs).
packs = Table(
    "packs",
    metadata,
    _id(),
    _tenant(nullable=True),
    Column("ref", String(200), nullable=False),
    Column("version", String(50), nullable=False, server_default="0.1.0"),
    Column("description", Text, nullable=False, server_default=""),
    Column("system", Boolean, nullable=False, server_default=text("false")),
    Column("source_path", Text),
    Column("meta", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("env_status", String(20), nullable=False, server_default="ready"),
    Column("env_error", Text),
    # The last environment build: its log (bounded; also on success), when it ended, how long.
    Column("env_log", Text),
    Column("env_built_at", DateTime(timezone=True)),
    Column("env_build_seconds", Float),
    # The pack's content (pack_store.py); NULL for empty packs and packs registered before
    # migration 0007, which run from source_path.
    Column("archive_sha256", String(64), ForeignKey("pack_archives.sha256"), index=True),
    _created(),
    _updated(),
    Index("uq_packs_tenant_ref", text("coalesce(tenant_id, 0)"), "ref", unique=True),
)

actions = Table(
    "actions",
    metadata,
    _id(),
    _tenant(nullable=True),
    Column("pack_id", BigInteger, ForeignKey("packs.id", ondelete="CASCADE"), nullable=False),
    Column("ref", String(400), nullable=False),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("runner_type", String(40), nullable=False),
    Column("entry_point", Text),
    Column("code", Text),
    Column("parameters", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("timeout", Float),
    Column("retry", JSONB),
    Column("with_items", Text),
    Column("concurrency", Integer),
    Column("secrets", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("http_config", JSONB),
    Column("container_config", JSONB),
    Column("workflow", JSONB),
    # Sandbox limits of this action (memory_mb, cpu_seconds…), within ATTUNE.sandbox.maximum.
    Column("limits", JSONB),
    # At most `limit` executions at once per rendered `key` (domain/concurrency.py).
    Column("concurrency_policy", JSONB),
    _created(),
    _updated(),
    Index("uq_actions_tenant_ref", text("coalesce(tenant_id, 0)"), "ref", unique=True),
    Index("ix_actions_pack_id", "pack_id"),
)

triggers = Table(
    "triggers",
    metadata,
    _id(),
    _tenant(nullable=True),
    Column("pack_id", BigInteger, ForeignKey("packs.id", ondelete="CASCADE")),
    Column("ref", String(400), nullable=False),
    Column("name", String(200), nullable=False),
    Column("type", String(20), nullable=False),
    Column("parameters", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("description", Text, nullable=False, server_default=""),
    Column("status", String(20), nullable=False, server_default="active"),
    Column("webhook_token", String(100)),
    # Durable timer state: the last scheduled fire time handed out, so restarts never fire twice.
    Column("last_fired_at", DateTime(timezone=True)),
    Column("fire_count", BigInteger, nullable=False, server_default="0"),
    _created(),
    _updated(),
    CheckConstraint("type in ('interval','date','cron','webhook','custom','execution')",
                    name="type"),
    Index("uq_triggers_tenant_ref", text("coalesce(tenant_id, 0)"), "ref", unique=True),
    # Probed by every terminal transition (domain/execution_triggers.py): tiny, often empty.
    Index("ix_triggers_execution", "tenant_id", postgresql_where=text("type = 'execution'")),
)

sensors = Table(
    "sensors",
    metadata,
    _id(),
    _tenant(nullable=True),
    Column("pack_id", BigInteger, ForeignKey("packs.id", ondelete="CASCADE"), nullable=False),
    Column("ref", String(400), nullable=False),
    Column("name", String(200), nullable=False),
    Column("entry_point", Text, nullable=False),
    Column("poll_interval", Float),
    Column("trigger_types", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("config", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("status", String(20), nullable=False, server_default="stopped"),
    Column("last_error", Text),
    Column("restarts", Integer, nullable=False, server_default="0"),
    _created(),
    _updated(),
    Index("uq_sensors_tenant_ref", text("coalesce(tenant_id, 0)"), "ref", unique=True),
)

rules = Table(
    "rules",
    metadata,
    _id(),
    _tenant(),
    Column("pack_id", BigInteger, ForeignKey("packs.id", ondelete="CASCADE")),
    Column("ref", String(400), nullable=False),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("trigger_id", BigInteger, ForeignKey("triggers.id", ondelete="CASCADE"), nullable=False),
    Column("action_id", BigInteger, ForeignKey("actions.id", ondelete="CASCADE"), nullable=False),
    Column("criteria", Text),
    Column("parameters", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("notify_on_trigger", Boolean, nullable=False, server_default=text("false")),
    _created(),
    _updated(),
    Index("uq_rules_tenant_ref", "tenant_id", "ref", unique=True),
    Index("ix_rules_trigger_id_enabled", "trigger_id", "enabled"),
)

events = Table(
    "events",
    metadata,
    _id(),
    _tenant(),
    Column("trigger_id", BigInteger, ForeignKey("triggers.id", ondelete="SET NULL")),
    Column("trigger_ref", String(400), nullable=False),
    Column("source", String(20), nullable=False),
    Column("payload", JSONB),
    Column("idempotency_key", String(200)),
    Column("caused_by_execution_id", BigInteger),
    Column("chain_depth", Integer, nullable=False, server_default="0"),
    Column("error", Text),
    # Set once the executor has evaluated the rules; NULL rows are resumed after a crash.
    Column("processed_at", DateTime(timezone=True)),
    # W3C trace id (32 hex) of the call that caused it; timer and sensor events start their own.
    Column("trace_id", String(32)),
    _created(),
    CheckConstraint("source in ('timer','webhook','sensor','api','execution')", name="source"),
    Index("ix_events_tenant_created", "tenant_id", text("created_at DESC"), text("id DESC")),
    Index("ix_events_payload", "payload", postgresql_using="gin",
          postgresql_ops={"payload": "jsonb_path_ops"}),
    Index("ix_events_trigger_id", "trigger_id"),
    Index("ix_events_trace", "tenant_id", "trace_id",
          postgresql_where=text("trace_id IS NOT NULL")),
    Index(
        "uq_events_trigger_idempotency",
        "trigger_id",
        "idempotency_key",
        unique=True,
        postgresql_where=text("idempotency_key IS NOT NULL"),
    ),
    Index("ix_events_unprocessed", "id", postgresql_where=text("processed_at IS NULL")),
    # The backlog's grouped count (domain/backlog.py): unprocessed events per tenant.
    Index("ix_events_unprocessed_tenant", "tenant_id",
          postgresql_where=text("processed_at IS NULL")),
    Index("ix_events_created", "created_at", "id"),  # retention: the oldest events first
)

rule_evaluations = Table(
    "rule_evaluations",
    metadata,
    _id(),
    _tenant(),
    Column("event_id", BigInteger, ForeignKey("events.id", ondelete="CASCADE"), nullable=False),
    Column("rule_id", BigInteger, ForeignKey("rules.id", ondelete="CASCADE"), nullable=False),
    Column("matched", Boolean, nullable=False),
    Column("error", Text),
    _created(),
    Index("uq_rule_evaluations_event_rule", "event_id", "rule_id", unique=True),
)

executions = Table(
    "executions",
    metadata,
    _id(),
    _tenant(),
    Column("action_id", BigInteger, ForeignKey("actions.id", ondelete="SET NULL")),
    Column("action_ref", String(400), nullable=False),
    Column("status", String(30), nullable=False),
    Column("parameters", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    # Names of parameters declared `secret: true`: masked as "***" in every API response.
    Column("secret_parameters", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("result", JSONB),
    Column("parent_execution_id", BigInteger, ForeignKey("executions.id", ondelete="CASCADE")),
    Column("task_name", String(200)),
    Column("item_index", Integer),
    Column("item", JSONB),
    Column("attempt", Integer, nullable=False, server_default="1"),
    Column("max_attempts", Integer, nullable=False, server_default="1"),
    Column("rule_id", BigInteger, ForeignKey("rules.id", ondelete="SET NULL")),
    Column("event_id", BigInteger, ForeignKey("events.id", ondelete="SET NULL")),
    Column("enforcement_id", BigInteger),
    Column("rerun_of", BigInteger),
    Column("worker", String(200)),
    Column("trigger_data", JSONB),
    # Engine state for workflows and with-items parents (pending tasks, rendered items, ...).
    Column("state", JSONB),
    # Per-execution timeout (a workflow task's `timeout:`); NULL: the action's, else the default.
    Column("timeout_seconds", Float),
    # Its action's concurrency policy: the rendered key (set when admitted or queued; NULL for
    # actions without a policy) and whether it waits in `scheduled` for a free slot.
    Column("concurrency_key", Text),
    Column("waiting_for_concurrency", Boolean, nullable=False, server_default=text("false")),
    # The trace of its event or API call, inherited by its children and retries (`?trace_id=`).
    Column("trace_id", String(32)),
    _created(),
    _updated(),
    Column("requested_at", DateTime(timezone=True)),
    Column("scheduled_at", DateTime(timezone=True)),
    Column("started_at", DateTime(timezone=True)),
    Column("paused_at", DateTime(timezone=True)),
    Column("canceling_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Column("heartbeat_at", DateTime(timezone=True)),
    Index("ix_executions_tenant_created", "tenant_id", text("created_at DESC"), text("id DESC")),
    # containment search (`@>`) on parameters and results (api.md "Searching executions")
    Index("ix_executions_parameters", "parameters", postgresql_using="gin",
          postgresql_ops={"parameters": "jsonb_path_ops"}),
    Index("ix_executions_result", "result", postgresql_using="gin",
          postgresql_ops={"result": "jsonb_path_ops"}),
    Index("ix_executions_tenant_status", "tenant_id", "status"),
    Index("ix_executions_parent", "parent_execution_id"),
    Index("ix_executions_rule", "rule_id"),
    Index("ix_executions_enforcement", "enforcement_id"),
    Index("ix_executions_action_ref", "tenant_id", "action_ref"),
    Index("ix_executions_trace", "tenant_id", "trace_id",
          postgresql_where=text("trace_id IS NOT NULL")),
    # The backlog's grouped count (domain/backlog.py): executions not yet running, per tenant.
    Index("ix_executions_queued", "tenant_id",
          postgresql_where=text("status IN ('requested', 'scheduled')")),
    # Slots taken and the FIFO queue of a (tenant, action, key): limited executions not finished.
    Index("ix_executions_concurrency", "tenant_id", "action_ref", "concurrency_key",
          "created_at", "id",
          postgresql_where=text("concurrency_key IS NOT NULL AND status IN "
                                "('scheduled', 'running', 'paused', 'canceling')")),
    # Retention (domain/retention.py): the oldest finished roots; executions of an event.
    Index("ix_executions_prunable", "finished_at", "id",
          postgresql_where=text("parent_execution_id IS NULL")),
    Index("ix_executions_event", "event_id", postgresql_where=text("event_id IS NOT NULL")),
)

enforcements = Table(
    "enforcements",
    metadata,
    _id(),
    _tenant(),
    Column("rule_id", BigInteger, ForeignKey("rules.id", ondelete="SET NULL")),
    Column("event_id", BigInteger, ForeignKey("events.id", ondelete="CASCADE"), nullable=False),
    Column("execution_id", BigInteger, ForeignKey("executions.id", ondelete="SET NULL")),
    Column("status", String(20), nullable=False, server_default="created"),
    Column("error", Text),
    _created(),
    _updated(),
    Index("uq_enforcements_rule_event", "rule_id", "event_id", unique=True),
    Index("ix_enforcements_tenant_created", "tenant_id", text("created_at DESC")),
    Index("ix_enforcements_event", "event_id"),
    # The foreign key to executions (its SET NULL when retention deletes one).
    Index("ix_enforcements_execution", "execution_id",
          postgresql_where=text("execution_id IS NOT NULL")),
)

inquiries = Table(
    "inquiries",
    metadata,
    _id(),
    _tenant(),
    Column(
        "execution_id", BigInteger, ForeignKey("executions.id", ondelete="CASCADE"), nullable=False
    ),
    Column("prompt", Text, nullable=False, server_default=""),
    Column("schema", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("status", String(20), nullable=False, server_default="pending"),
    Column("ttl_seconds", Integer),
    Column("expires_at", DateTime(timezone=True)),
    Column("default_response", JSONB),
    Column("response", JSONB),
    Column("roles", JSONB),
    Column("responded_by", String(200)),
    Column("responded_at", DateTime(timezone=True)),
    _created(),
    Index("ix_inquiries_tenant_status", "tenant_id", "status"),
    Index("ix_inquiries_expiry", "expires_at", postgresql_where=text("status = 'pending'")),
    Index("ix_inquiries_execution", "execution_id"),  # the foreign key (retention deletes)
)

datastore_items = Table(
    "datastore_items",
    metadata,
    _id(),
    _tenant(),
    Column("key", String(400), nullable=False),
    Column("value", JSONB),
    Column("ciphertext", LargeBinary),
    Column("key_id", String(50)),
    Column("encrypted", Boolean, nullable=False, server_default=text("false")),
    Column("expires_at", DateTime(timezone=True)),
    _created(),
    _updated(),
    Index("uq_datastore_items_tenant_key", "tenant_id", "key", unique=True),
    CheckConstraint(
        "(encrypted AND ciphertext IS NOT NULL AND key_id IS NOT NULL AND value IS NULL)"
        " OR (NOT encrypted AND ciphertext IS NULL)",
        name="encrypted_shape",
    ),
)

secrets = Table(
    "secrets",
    metadata,
    _id(),
    _tenant(),
    Column("key", String(400), nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("key_id", String(50), nullable=False),
    _created(),
    _updated(),
    Index("uq_secrets_tenant_key", "tenant_id", "key", unique=True),
)

# Append-only: triggers created by the migrations refuse UPDATE, TRUNCATE and any DELETE but
# retention's (of entries older than its cutoff; domain/retention.py).
audit_log = Table(
    "audit_log",
    metadata,
    _id(),
    Column("tenant_id", BigInteger),
    Column("timestamp", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("actor_type", String(20), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(100), nullable=False),
    Column("entity_type", String(50), nullable=False),
    Column("entity_id", String(400), nullable=False),
    Column("details", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    CheckConstraint("actor_type in ('user','service','worker')", name="actor_type"),
    Index("ix_audit_log_entity", "tenant_id", "entity_type", "entity_id", "id"),
    Index("ix_audit_log_timestamp", "timestamp", "id"),  # retention: the oldest entries first
)

# Durable timers of the executor: retry backoff, execution/workflow timeouts, inquiry TTLs.
timers = Table(
    "timers",
    metadata,
    _id(),
    Column("tenant_id", BigInteger),
    Column("kind", String(40), nullable=False),
    Column("entity_id", BigInteger, nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("payload", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    _created(),
    Index("ix_timers_due_at", "due_at"),
    Index("uq_timers_kind_entity", "kind", "entity_id", unique=True),
)

workers = Table(
    "workers",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("hostname", String(200), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("status", String(20), nullable=False, server_default="online"),
    Column("started_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# The gateways' rate-limit buckets (domain/token_bucket.py), shared by every gateway process.
# UNLOGGED: not written to the WAL (cheaper per request, not replicated) and emptied after a
# crash, which refills every bucket: a restart errs toward allowing, as a restarted process did.
rate_limit_buckets = Table(
    "rate_limit_buckets",
    metadata,
    Column("bucket", String(32), primary_key=True),
    Column("key", Text, primary_key=True),
    Column("tokens", Float, nullable=False),
    Column("granted", Boolean, nullable=False),  # the last take's answer (what it returns)
    Column("updated_at", DateTime(timezone=True), nullable=False),
    prefixes=["UNLOGGED"],
)

# Rows pruned so far per table (domain/retention.py): the source of attune_pruned_rows_total.
prune_totals = Table(
    "prune_totals",
    metadata,
    Column("table_name", String(63), primary_key=True),
    Column("rows", BigInteger, nullable=False),
)
