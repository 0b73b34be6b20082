"""The API objects of api.md as OpenAPI 3.0 component schemas, field for field what each
domain `to_api` (or view) returns; views name theirs with `openapi.returns`."""

from __future__ import annotations

from typing import Any

from nameko_services.domain.states import ExecutionStatus

Schema = dict[str, Any]


def _t(kind: str, nullable: bool = False, **extra: Any) -> Schema:
    schema: Schema = {"type": kind, **extra}
    if nullable:
        schema["nullable"] = True
    return schema


def _obj(properties: dict[str, Schema], optional: tuple[str, ...] = (),
         description: str = "") -> Schema:
    """An object whose every property is always present except `optional` ones."""
    schema: Schema = {
        "type": "object",
        "required": [name for name in properties if name not in optional],
        "properties": properties,
    }
    if description:
        schema["description"] = description
    return schema


ID = _t("integer")
ID_OR_NULL = _t("integer", True)
TEXT = _t("string")
TEXT_OR_NULL = _t("string", True)
WHEN = _t("string", format="date-time")
WHEN_OR_NULL = _t("string", True, format="date-time")
ANY: Schema = {"description": "any JSON value", "nullable": True}
OBJECT_OR_NULL = _t("object", True, additionalProperties=True)
REFS = _t("array", items=TEXT)
TENANT = _t("integer", True, description="null: a system object, shared by every tenant")

EXECUTION = _obj({
    "id": ID, "action_id": ID_OR_NULL, "action_ref": TEXT,
    "status": _t("string", enum=[s.value for s in ExecutionStatus]),
    "parameters": OBJECT_OR_NULL, "result": ANY,
    "parent_execution_id": ID_OR_NULL, "task_name": TEXT_OR_NULL, "item_index": ID_OR_NULL,
    "item": ANY, "attempt": _t("integer"), "max_attempts": _t("integer"),
    "rule_id": ID_OR_NULL, "event_id": ID_OR_NULL, "enforcement_id": ID_OR_NULL,
    "rerun_of": ID_OR_NULL, "worker": TEXT_OR_NULL, "waiting_for_concurrency": _t("boolean"),
    "tenant_id": ID, "trace_id": TEXT_OR_NULL,
    "created_at": WHEN, "requested_at": WHEN_OR_NULL, "scheduled_at": WHEN_OR_NULL,
    "started_at": WHEN_OR_NULL, "paused_at": WHEN_OR_NULL, "finished_at": WHEN_OR_NULL,
    "updated_at": WHEN,
}, description="An execution; secret parameters shown as \"***\"")

_DEFINITION = {"id": ID, "ref": TEXT}
ACTION = _obj({
    **_DEFINITION, "pack": TEXT, "pack_id": ID, "name": TEXT, "description": TEXT_OR_NULL,
    "runner_type": TEXT, "entry_point": TEXT_OR_NULL, "code": TEXT_OR_NULL,
    "parameters": OBJECT_OR_NULL, "timeout": _t("number", True), "retry": OBJECT_OR_NULL,
    "with_items": TEXT_OR_NULL, "concurrency": ID_OR_NULL, "concurrency_policy": OBJECT_OR_NULL,
    "secrets": _t("array", True, items=TEXT), "http_config": OBJECT_OR_NULL,
    "container_config": OBJECT_OR_NULL, "workflow": OBJECT_OR_NULL, "limits": OBJECT_OR_NULL,
    "tenant_id": TENANT, "created_at": WHEN, "updated_at": WHEN,
}, description="An action definition; secret parameter defaults masked")

PACK = _obj({
    **_DEFINITION, "version": TEXT_OR_NULL, "description": TEXT_OR_NULL,
    "system": _t("boolean"), "tenant_id": TENANT,
    "actions": REFS, "triggers": REFS, "rules": REFS, "sensors": REFS,
    "env_status": TEXT_OR_NULL, "env_error": TEXT_OR_NULL, "meta": OBJECT_OR_NULL,
    "archive_sha256": TEXT_OR_NULL, "created_at": WHEN, "updated_at": WHEN,
    "source_path": _t("string", True, description="only to the owning tenant"),
}, optional=("source_path",), description="A pack and the refs of what it holds")

PACK_ENVIRONMENT = _obj({
    "pack_id": ID, "ref": TEXT, "version": TEXT_OR_NULL, "status": TEXT_OR_NULL,
    "error": TEXT_OR_NULL, "log": TEXT_OR_NULL, "built_at": WHEN_OR_NULL,
    "build_seconds": _t("number", True),
}, description="A pack's environment and its last build's log")

RULE = _obj({
    **_DEFINITION, "pack": TEXT_OR_NULL, "pack_id": ID_OR_NULL, "name": TEXT,
    "description": TEXT_OR_NULL, "trigger": TEXT, "trigger_id": ID, "action": TEXT,
    "action_id": ID, "criteria": TEXT_OR_NULL, "parameters": OBJECT_OR_NULL,
    "enabled": _t("boolean"), "notify_on_trigger": _t("boolean"), "tenant_id": TENANT,
    "created_at": WHEN, "updated_at": WHEN,
}, description="A rule: when its trigger fires and criteria match, run its action")

RULE_DRY_RUN = _obj({
    "rule_id": ID, "rule_ref": TEXT, "enabled": _t("boolean"), "event_id": ID_OR_NULL,
    "trigger_matches": _t("boolean"), "matched": _t("boolean"),
    "criteria": _obj({"expression": TEXT_OR_NULL, "value": ANY, "error": TEXT_OR_NULL}),
    "action": TEXT, "parameters": OBJECT_OR_NULL, "parameters_error": TEXT_OR_NULL,
    "validation_errors": OBJECT_OR_NULL, "outcome": TEXT, "would_fire": _t("boolean"),
}, description="What the rule would do with the event; nothing stored, nothing run")

TRIGGER = _obj({
    **_DEFINITION, "pack": TEXT_OR_NULL, "pack_id": ID_OR_NULL, "name": TEXT, "type": TEXT,
    "parameters": OBJECT_OR_NULL, "description": TEXT_OR_NULL, "status": TEXT_OR_NULL,
    "tenant_id": TENANT, "created_at": WHEN, "updated_at": WHEN,
    "webhook_url": _t("string", description="webhook triggers"),
    "webhook_token": _t("string", True, description="webhook triggers, to the owning tenant's "
                        "writers only"),
}, optional=("webhook_url", "webhook_token"), description="A trigger definition")

SENSOR = _obj({
    **_DEFINITION, "pack": TEXT, "pack_id": ID, "name": TEXT, "entry_point": TEXT_OR_NULL,
    "poll_interval": _t("number", True), "trigger_types": REFS, "config": OBJECT_OR_NULL,
    "enabled": _t("boolean"), "status": TEXT_OR_NULL, "last_error": TEXT_OR_NULL,
    "restarts": _t("integer"), "tenant_id": TENANT, "created_at": WHEN, "updated_at": WHEN,
}, description="A sensor and the health the sensor service reports")

EVENT = _obj({
    "id": ID, "trigger_id": ID_OR_NULL, "trigger_ref": TEXT_OR_NULL, "source": TEXT, "payload": ANY,
    "caused_by_execution_id": ID_OR_NULL, "chain_depth": _t("integer"), "error": TEXT_OR_NULL,
    "tenant_id": ID, "trace_id": TEXT_OR_NULL, "created_at": WHEN,
}, description="An event: one firing of a trigger")

ENFORCEMENT = _obj({
    "id": ID, "rule_id": ID_OR_NULL, "event_id": ID_OR_NULL, "execution_id": ID_OR_NULL,
    "status": TEXT, "error": TEXT_OR_NULL, "tenant_id": ID, "created_at": WHEN,
    "updated_at": WHEN,
}, description="A rule's decision on an event")

INQUIRY = _obj({
    "id": ID, "execution_id": ID, "prompt": TEXT_OR_NULL, "schema": OBJECT_OR_NULL,
    "status": TEXT, "ttl_seconds": ID_OR_NULL, "expires_at": WHEN_OR_NULL,
    "default_response": ANY, "response": ANY, "roles": _t("array", True, items=TEXT),
    "responded_by": TEXT_OR_NULL, "responded_at": WHEN_OR_NULL, "created_at": WHEN,
}, description="A question a workflow waits on")

DATASTORE_ITEM = _obj({
    "key": TEXT, "value": {**ANY, "description": "\"***\" in lists when encrypted"},
    "encrypted": _t("boolean"), "expires_at": WHEN_OR_NULL, "created_at": WHEN,
    "updated_at": WHEN,
}, description="A datastore key and its value")

SECRET = _obj({"key": TEXT, "created_at": WHEN, "updated_at": WHEN},
              optional=("updated_at",), description="A secret's name; never its value")

USER = _obj({"id": ID, "username": TEXT, "tenant_id": ID, "role": TEXT, "created_at": WHEN},
            description="A user of the caller's tenant")

ME = {**USER, "required": [*USER["required"], "permissions"],
      "properties": {**USER["properties"], "permissions": REFS},
      "description": "You, and the permissions your role holds"}

TOKEN_PAIR = _obj({
    "user": {"$ref": "#/components/schemas/User"}, "access_token": TEXT, "refresh_token": TEXT,
    "token_type": _t("string", enum=["Bearer"]), "expires_in": _t("integer"),
}, description="A login's tokens")

LOGOUT = _obj({"logged_out": _t("boolean"), "tokens_valid_after": WHEN},
              description="Every token issued before `tokens_valid_after` is refused")

API_KEY = _obj({
    "id": ID, "name": TEXT, "prefix": TEXT, "role": TEXT, "user_id": ID, "created_at": WHEN,
    "expires_at": WHEN_OR_NULL, "revoked_at": WHEN_OR_NULL,
    "key": _t("string", description="the key itself: only in the answer that creates it"),
}, optional=("key",), description="An API key")

AUDIT_ENTRY = _obj({
    "id": ID, "timestamp": WHEN, "actor_type": TEXT, "actor": TEXT_OR_NULL, "action": TEXT,
    "entity_type": TEXT, "entity_id": TEXT_OR_NULL, "details": OBJECT_OR_NULL,
}, description="Who did what to which object")

WEBHOOK_RECEIPT = _obj({
    "event_id": ID, "trigger_id": ID, "received_at": WHEN, "trace_id": TEXT_OR_NULL,
    "execution": {"allOf": [{"$ref": "#/components/schemas/Execution"}], "nullable": True,
                  "description": "with ?wait=: the event's first execution"},
    "reason": TEXT_OR_NULL, "error": TEXT_OR_NULL,
}, optional=("execution", "reason", "error"), description="The event a webhook call became")

HEALTH = _obj({
    "status": _t("string", enum=["ok", "degraded"]),
    "checks": _t("object", additionalProperties=TEXT),
    "gateway_process": TEXT,
    "supervisor": _t("object", additionalProperties=True),
}, optional=("supervisor",), description="Not enveloped: 200 ok, 503 degraded")

OPENAPI_DOCUMENT = _obj({
    "openapi": _t("string"), "info": _t("object"), "servers": _t("array"),
    "security": _t("array"), "paths": _t("object"), "components": _t("object"),
}, description="This document (not enveloped)")

OBJECTS: dict[str, Schema] = {
    "Execution": EXECUTION, "Action": ACTION, "Pack": PACK, "PackEnvironment": PACK_ENVIRONMENT,
    "Rule": RULE, "RuleDryRun": RULE_DRY_RUN, "Trigger": TRIGGER, "Sensor": SENSOR,
    "Event": EVENT, "Enforcement": ENFORCEMENT, "Inquiry": INQUIRY,
    "DatastoreItem": DATASTORE_ITEM, "Secret": SECRET, "User": USER, "Me": ME,
    "TokenPair": TOKEN_PAIR, "Logout": LOGOUT, "ApiKey": API_KEY, "AuditEntry": AUDIT_ENTRY,
    "WebhookReceipt": WEBHOOK_RECEIPT, "Health": HEALTH,
    "OpenAPIDocument": OPENAPI_DOCUMENT,
}
