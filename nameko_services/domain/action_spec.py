"""Validation of an action definition (API body or pack yaml) into the values stored for it.

Pure: no database. Errors are ValidationError whose `fields` name the offending path
(`retry.max_attempts`, `workflow.tasks.1.depends_on`) so pack files can report the line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from runners import UnknownRunnerError, canonical_runner_type
from runners.sandbox import LIMIT_KEYS

from . import concurrency as concurrency_policy
from . import templating, yaml_source
from .catalog import (
    Problems,
    check_name,
    check_unknown,
    is_int,
    is_number,
    optional_text,
)
from .errors import ValidationError
from .parameters import check_schema

ACTION_FIELDS = frozenset({
    "name", "description", "runner_type", "entry_point", "code", "parameters", "timeout",
    "retry", "with_items", "concurrency", "secrets", "http_config", "container_config",
    "workflow", "limits", "concurrency_policy",
})
PROCESS_RUNNERS = frozenset({"python", "node", "shell"})
RETRY_KEYS = frozenset({"max_attempts", "delay_seconds", "backoff_multiplier", "max_delay_seconds"})
HTTP_KEYS = frozenset({"method", "url", "headers", "body", "timeout", "success_status"})
HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
CONTAINER_KEYS = frozenset({"image", "command", "memory", "cpus", "network", "pull"})
PULL_POLICIES = frozenset({"always", "if_missing", "never"})
WORKFLOW_KEYS = frozenset({"tasks", "output", "timeout", "on_failure", "description"})
TASK_KEYS = frozenset({
    "name", "action", "parameters", "depends_on", "with_items", "concurrency", "on_failure",
    "retry", "timeout", "when", "description",
})
ON_FAILURE = frozenset({"abort", "continue", "retry"})
TASK_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
ACTION_REF_RE = re.compile(r"^[a-z0-9_]+\.[A-Za-z0-9_][A-Za-z0-9_-]*$")
# Names the workflow template context already uses; a task cannot shadow them.
RESERVED_TASK_NAMES = frozenset({
    "params", "execution", "trigger", "datastore", "item", "item_index", "secret", "now",
})


def check_entry_point(
    problems: Problems, value: Any, pack_dir: Path | None, where: str, subdir: str
) -> str | None:
    """A file inside the pack folder, relative to it (a bare name is also looked up in `subdir`)."""
    if not isinstance(value, str) or not value.strip():
        problems.add(where, "must be a relative file path inside the pack")
        return None
    relative = PurePosixPath(value.strip())
    if relative.is_absolute() or ".." in relative.parts or "\\" in value:
        problems.add(where, "must be a relative path inside the pack (no '/' prefix, no '..')")
        return None
    if pack_dir is None:
        problems.add(where, "the pack has no folder on the server; send `code` instead")
        return None
    root = pack_dir.resolve()
    for candidate in (relative, PurePosixPath(subdir) / relative):
        full = (root / candidate).resolve()
        if not full.is_relative_to(root):
            problems.add(where, "points outside the pack folder")
            return None
        if full.is_file():
            return str(candidate)
    problems.add(where, f"file '{relative}' not found in the pack")
    return None


def check_template(problems: Problems, value: Any, where: str) -> None:
    try:
        templating.check_template(value)
    except templating.TemplateError as exc:
        problems.add(where, f"invalid template: {exc.reason}")


def check_positive(problems: Problems, value: Any, where: str) -> None:
    if value is not None and (not is_number(value) or value <= 0):
        problems.add(where, "must be a number greater than 0")


def check_limits(problems: Problems, value: Any, runner: str | None) -> dict[str, int] | None:
    """Sandbox limits of a python, node or shell action: known keys, positive integers (the
    operator's maximum bounds them when the action runs)."""
    if value is None:
        return None
    if runner is not None and runner not in PROCESS_RUNNERS:
        problems.add("limits", "only for runner_type python, node or shell")
        return None
    if not isinstance(value, Mapping):
        problems.add("limits", f"must be a mapping of {', '.join(LIMIT_KEYS)}")
        return None
    check_unknown(problems, value, frozenset(LIMIT_KEYS), "limits.")
    for key, number in value.items():
        if key in LIMIT_KEYS and (not is_int(number) or number < 1):
            problems.add(f"limits.{key}", "must be an integer of at least 1")
    return dict(value)


def check_concurrency(problems: Problems, value: Any, where: str) -> None:
    if value is not None and (not is_int(value) or value < 1):
        problems.add(where, "must be an integer of at least 1")


def check_retry(problems: Problems, retry: Any, where: str = "retry") -> dict[str, Any] | None:
    """`{max_attempts ≥ 1, delay_seconds ≥ 0, backoff_multiplier ≥ 1, max_delay_seconds ≥ 0}`."""
    if retry is None:
        return None
    if not isinstance(retry, Mapping):
        problems.add(where, "must be a mapping")
        return None
    check_unknown(problems, retry, RETRY_KEYS, f"{where}.")
    rules = {
        "max_attempts": (lambda v: is_int(v) and v >= 1, "must be an integer of at least 1"),
        "delay_seconds": (lambda v: is_number(v) and v >= 0, "must be a number of at least 0"),
        "backoff_multiplier": (lambda v: is_number(v) and v >= 1, "must be a number of at least 1"),
        "max_delay_seconds": (lambda v: is_number(v) and v >= 0, "must be a number of at least 0"),
    }
    for key, (ok, reason) in rules.items():
        if key in retry and not ok(retry[key]):
            problems.add(f"{where}.{key}", reason)
    return dict(retry)


def _is_template(value: Any) -> bool:
    """A value rendered at run time (`"{{ params.headers }}"`), checked when it is rendered."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _check_http(problems: Problems, config: Any) -> dict[str, Any] | None:
    if not isinstance(config, Mapping):
        problems.add("http_config", "required for runner_type http (a mapping with at least url)")
        return None
    check_unknown(problems, config, HTTP_KEYS, "http_config.")
    url = config.get("url")
    if not isinstance(url, str) or not url.strip():
        problems.add("http_config.url", "required")
    method = config.get("method", "GET")
    result = dict(config)
    if not isinstance(method, str):
        problems.add("http_config.method", "must be a string")
    elif "{" not in method:
        if method.upper() not in HTTP_METHODS:
            problems.add("http_config.method", f"must be one of {sorted(HTTP_METHODS)}")
        result["method"] = method.upper()
    headers = config.get("headers")
    if headers is not None and not _is_template(headers) and not (
        isinstance(headers, Mapping) and all(isinstance(v, str | int | float) for v in
                                             headers.values())
    ):
        problems.add("http_config.headers", "must be a mapping of header name to text "
                     "(or one template)")
    if not _is_template(config.get("timeout")):
        check_positive(problems, config.get("timeout"), "http_config.timeout")
    statuses = config.get("success_status")
    if statuses is not None and not _is_template(statuses) and not (
        isinstance(statuses, list) and statuses
        and all(is_int(s) and 100 <= s <= 599 for s in statuses)
    ):
        problems.add("http_config.success_status", "must be a list of HTTP status codes")
    for key in sorted(HTTP_KEYS & set(config)):
        if key in config:
            check_template(problems, config[key], f"http_config.{key}")
    return result


def _check_container(problems: Problems, config: Any) -> dict[str, Any] | None:
    if not isinstance(config, Mapping):
        problems.add("container_config", "required for runner_type container (needs image)")
        return None
    check_unknown(problems, config, CONTAINER_KEYS, "container_config.")
    image = config.get("image")
    if not isinstance(image, str) or not image.strip():
        problems.add("container_config.image", "required")
    command = config.get("command")
    if command is not None and not (
        isinstance(command, str) or (isinstance(command, list)
                                     and all(isinstance(c, str) for c in command))
    ):
        problems.add("container_config.command", "must be a string or a list of strings")
    memory = config.get("memory")
    if memory is not None and not (isinstance(memory, str) or is_int(memory)):
        problems.add("container_config.memory", "must be a size such as '256m'")
    check_positive(problems, config.get("cpus"), "container_config.cpus")
    network = config.get("network")
    if network is not None and (not isinstance(network, str) or network == "host"):
        problems.add("container_config.network", "must be a network name other than 'host'")
    pull = config.get("pull")
    if pull is not None and pull not in PULL_POLICIES:
        problems.add("container_config.pull", f"must be one of {sorted(PULL_POLICIES)}")
    return dict(config)


def _check_task(problems: Problems, task: Any, where: str, names: set[str]) -> None:
    if not isinstance(task, Mapping):
        problems.add(where, "must be a mapping")
        return
    check_unknown(problems, task, TASK_KEYS, f"{where}.")
    name = task.get("name")
    if not isinstance(name, str) or not TASK_NAME_RE.match(name):
        problems.add(f"{where}.name", "required: letters, digits and '_' (a template name)")
    elif name in RESERVED_TASK_NAMES:
        problems.add(f"{where}.name", f"'{name}' is reserved in the template context")
    elif name in names:
        problems.add(f"{where}.name", f"duplicate task name '{name}'")
    else:
        names.add(name)
    action = task.get("action")
    if not isinstance(action, str) or not ACTION_REF_RE.match(action):
        problems.add(f"{where}.action", "required: an action ref such as 'pack.name'")
    parameters = task.get("parameters")
    if parameters is not None and not isinstance(parameters, Mapping):
        problems.add(f"{where}.parameters", "must be a mapping")
    for key in ("parameters", "with_items"):
        if task.get(key) is not None:
            check_template(problems, task[key], f"{where}.{key}")
    if task.get("with_items") is not None and not isinstance(task["with_items"], str | list):
        problems.add(f"{where}.with_items", "must be a template string or a list")
    when = task.get("when")
    if when is not None:
        try:
            templating.check_expression(str(when))
        except templating.TemplateError as exc:
            problems.add(f"{where}.when", f"invalid expression: {exc.reason}")
    check_concurrency(problems, task.get("concurrency"), f"{where}.concurrency")
    if task.get("on_failure") is not None and task["on_failure"] not in ON_FAILURE:
        problems.add(f"{where}.on_failure", f"must be one of {sorted(ON_FAILURE)}")
    check_retry(problems, task.get("retry"), f"{where}.retry")
    check_positive(problems, task.get("timeout"), f"{where}.timeout")


def _depends(task: Mapping[str, Any]) -> list[Any]:
    deps = task.get("depends_on") or []
    return [deps] if isinstance(deps, str) else deps


def _check_graph(problems: Problems, tasks: list[Any], where: str) -> None:
    """depends_on names existing tasks and the graph has no cycle."""
    names = {t.get("name") for t in tasks if isinstance(t, Mapping)}
    graph: dict[str, list[str]] = {}
    for index, task in enumerate(tasks):
        if not isinstance(task, Mapping):
            continue
        deps = _depends(task)
        field_path = f"{where}.{index}.depends_on"
        if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
            problems.add(field_path, "must be a list of task names")
            continue
        for dep in deps:
            if dep not in names or dep == task.get("name"):
                problems.add(field_path, f"'{dep}' is not another task of this workflow")
        graph[str(task.get("name"))] = [d for d in deps if d in names]
    state: dict[str, int] = {}

    def visit(node: str) -> bool:
        state[node] = 1
        for dep in graph.get(node, []):
            if state.get(dep) == 1 or (state.get(dep) is None and not visit(dep)):
                return False
        state[node] = 2
        return True

    for node in graph:
        if state.get(node) is None and not visit(node):
            problems.add(where, f"depends_on forms a cycle through task '{node}'")
            return


def check_workflow(problems: Problems, block: Any, where: str = "workflow") -> dict[str, Any]:
    """The workflow block of packs.md: tasks, dependencies, policies and templates."""
    if not isinstance(block, Mapping):
        problems.add(where, "must be a mapping with a list of tasks")
        return {}
    check_unknown(problems, block, WORKFLOW_KEYS, f"{where}.")
    tasks = block.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        problems.add(f"{where}.tasks", "required: a non-empty list of tasks")
        tasks = []
    names: set[str] = set()
    for index, task in enumerate(tasks):
        _check_task(problems, task, f"{where}.tasks.{index}", names)
    _check_graph(problems, tasks, f"{where}.tasks")
    check_positive(problems, block.get("timeout"), f"{where}.timeout")
    if block.get("on_failure") is not None and block["on_failure"] not in ON_FAILURE:
        problems.add(f"{where}.on_failure", f"must be one of {sorted(ON_FAILURE)}")
    if block.get("output") is not None:
        check_template(problems, block["output"], f"{where}.output")
    return dict(block)


def _load_workflow_file(pack_dir: Path, entry_point: str) -> dict[str, Any]:
    """A workflow entry point: a yaml file holding the block (or an action with `workflow:`)."""
    doc = yaml_source.load_mapping(pack_dir / entry_point, entry_point)
    inner = doc.data.get("workflow") if "workflow" in doc.data else None
    block, prefix = (inner, "workflow.") if inner is not None else (doc.data, "")
    problems = Problems("workflow")
    result = check_workflow(problems, block, "")
    fields = {k.lstrip("."): v for k, v in problems.fields.items()}
    if fields:
        raise doc.error(ValidationError("Invalid workflow", fields), prefix)
    return result


def _check_secrets(problems: Problems, value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(s, str) and s for s in value):
        problems.add("secrets", "must be a list of secret names")
        return []
    return list(dict.fromkeys(value))


def _check_sources(
    problems: Problems, runner: str | None, spec: Mapping[str, Any], pack_dir: Path | None
) -> tuple[str | None, str | None]:
    """entry_point/code rules per runner; returns the normalised (entry_point, code)."""
    entry_point, code = spec.get("entry_point"), spec.get("code")
    if code is not None and (not isinstance(code, str) or not code.strip()):
        problems.add("code", "must be non-empty source text")
    if runner in PROCESS_RUNNERS and (entry_point is None) == (code is None):
        problems.add("entry_point", "give exactly one of entry_point or code")
    elif runner in ("http", "inquiry"):
        for key in ("entry_point", "code"):
            if spec.get(key) is not None:
                problems.add(key, f"not used by runner_type {runner}")
    elif runner == "container" and entry_point is not None and code is not None:
        problems.add("entry_point", "give at most one of entry_point or code")
    elif runner == "workflow":
        if code is not None:
            problems.add("code", "not used by runner_type workflow (use workflow)")
        if (entry_point is None) == (spec.get("workflow") is None):
            problems.add("workflow", "give exactly one of workflow or entry_point (a yaml file)")
    if entry_point is not None:
        entry_point = check_entry_point(problems, entry_point, pack_dir, "entry_point", "actions")
    return entry_point, code


def normalize(spec: Mapping[str, Any], *, pack_dir: Path | None) -> dict[str, Any]:
    """Validate one action definition; return the column values to store (runner canonical)."""
    problems = Problems("action")
    check_unknown(problems, spec, ACTION_FIELDS)
    name = check_name(problems, spec.get("name"))
    description = optional_text(problems, spec, "description")
    runner = spec.get("runner_type")
    if not isinstance(runner, str) or not runner:
        problems.add("runner_type", "required")
        runner = None
    else:
        try:
            runner = canonical_runner_type(runner)
        except UnknownRunnerError as exc:
            problems.add("runner_type", str(exc))
            runner = None
    parameters = spec.get("parameters")
    parameters = {} if parameters is None else parameters
    try:
        check_schema(parameters)
    except ValidationError as exc:
        for key, reason in exc.fields.items():
            problems.add(key, reason)
    check_positive(problems, spec.get("timeout"), "timeout")
    retry = check_retry(problems, spec.get("retry"))
    with_items = spec.get("with_items")
    if with_items is not None:
        if not isinstance(with_items, str):
            problems.add("with_items", "must be a template string such as '{{ items }}'")
        else:
            check_template(problems, with_items, "with_items")
    check_concurrency(problems, spec.get("concurrency"), "concurrency")
    policy = concurrency_policy.check_policy(problems, spec.get("concurrency_policy"), runner)
    secrets = _check_secrets(problems, spec.get("secrets"))
    limits = check_limits(problems, spec.get("limits"), runner)
    entry_point, code = _check_sources(problems, runner, spec, pack_dir)
    blocks: dict[str, Any] = {"http_config": None, "container_config": None, "workflow": None}
    owners = {"http_config": "http", "container_config": "container", "workflow": "workflow"}
    for key, owner in owners.items():
        if spec.get(key) is not None and runner is not None and runner != owner:
            problems.add(key, f"only for runner_type {owner}")
    if runner == "http":
        blocks["http_config"] = _check_http(problems, spec.get("http_config"))
    elif runner == "container":
        blocks["container_config"] = _check_container(problems, spec.get("container_config"))
    elif runner == "workflow" and spec.get("workflow") is not None:
        blocks["workflow"] = check_workflow(problems, spec["workflow"])
    problems.raise_if_any()
    if runner == "workflow" and entry_point is not None and pack_dir is not None:
        blocks["workflow"] = _load_workflow_file(pack_dir, entry_point)
    timeout = spec.get("timeout")
    return {
        "name": name,
        "description": description,
        "runner_type": runner,
        "entry_point": entry_point,
        "code": code,
        "parameters": dict(parameters),
        "timeout": float(timeout) if timeout is not None else None,
        "retry": retry,
        "with_items": with_items,
        "concurrency": spec.get("concurrency"),
        "concurrency_policy": policy,
        "secrets": secrets,
        "limits": limits,
        **blocks,
    }
