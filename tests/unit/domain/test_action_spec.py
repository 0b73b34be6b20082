"""Action definitions: what each runner needs, workflow graphs, retry policies."""

import pytest

from nameko_services.domain import action_spec
from nameko_services.domain.errors import ValidationError


def fields_of(spec, pack_dir=None):
    with pytest.raises(ValidationError) as caught:
        action_spec.normalize(spec, pack_dir=pack_dir)
    return caught.value.fields


def workflow(*tasks, **block):
    return {"name": "wf", "runner_type": "workflow", "workflow": {"tasks": list(tasks), **block}}


def test_a_minimal_shell_action_gets_defaults_for_everything_else():
    values = action_spec.normalize({"name": "a", "runner_type": "local-shell-script",
                                    "code": "echo"}, pack_dir=None)
    assert values["runner_type"] == "shell" and values["parameters"] == {}
    assert values["secrets"] == [] and values["timeout"] is None and values["retry"] is None


def test_every_problem_is_reported_at_once():
    fields = fields_of({"name": "a b", "runner_type": "shell", "code": "x", "timeout": -1,
                        "concurrency": 1.5})
    assert set(fields) == {"name", "timeout", "concurrency"}


def test_an_inquiry_action_needs_no_code():
    values = action_spec.normalize({"name": "ask", "runner_type": "inquiry"}, pack_dir=None)
    assert values["entry_point"] is None and values["code"] is None
    assert fields_of({"name": "ask", "runner_type": "inquiry", "code": "x"}) == {
        "code": "not used by runner_type inquiry"}


def test_duplicate_secret_names_are_kept_once_in_order():
    values = action_spec.normalize({"name": "a", "runner_type": "shell", "code": "x",
                                    "secrets": ["b", "a", "b"]}, pack_dir=None)
    assert values["secrets"] == ["b", "a"]


@pytest.mark.parametrize("tasks, field", [
    ([{"name": "a", "action": "core.echo"}, {"name": "a", "action": "core.echo"}],
     "workflow.tasks.1.name"),
    ([{"name": "params", "action": "core.echo"}], "workflow.tasks.0.name"),
    ([{"name": "a-b", "action": "core.echo"}], "workflow.tasks.0.name"),
    ([{"name": "a", "action": "echo"}], "workflow.tasks.0.action"),
    ([{"name": "a", "action": "core.echo", "on_failure": "panic"}], "workflow.tasks.0.on_failure"),
    ([{"name": "a", "action": "core.echo", "concurrency": 0}], "workflow.tasks.0.concurrency"),
    ([{"name": "a", "action": "core.echo", "retry": {"max_attempts": 0}}],
     "workflow.tasks.0.retry.max_attempts"),
    ([{"name": "a", "action": "core.echo", "parameters": {"x": "{{ ( }}"}}],
     "workflow.tasks.0.parameters"),
    ([{"name": "a", "action": "core.echo", "depends_on": ["a"]}], "workflow.tasks.0.depends_on"),
    ([{"name": "a", "action": "core.echo", "loop": True}], "workflow.tasks.0.loop"),
    ([], "workflow.tasks"),
])
def test_bad_workflow_tasks_are_named_by_their_path(tasks, field):
    assert field in fields_of(workflow(*tasks))


def test_a_dependency_cycle_is_refused():
    fields = fields_of(workflow(
        {"name": "a", "action": "core.echo", "depends_on": ["c"]},
        {"name": "b", "action": "core.echo", "depends_on": ["a"]},
        {"name": "c", "action": "core.echo", "depends_on": "b"},
    ))
    assert "cycle" in fields["workflow.tasks"]


def test_a_diamond_of_dependencies_is_fine():
    values = action_spec.normalize(workflow(
        {"name": "a", "action": "core.echo"},
        {"name": "b", "action": "core.echo", "depends_on": ["a"]},
        {"name": "c", "action": "core.echo", "depends_on": ["a"]},
        {"name": "d", "action": "core.echo", "depends_on": ["b", "c"], "on_failure": "continue",
         "with_items": "{{ params.items }}", "when": "{{ b.status == 'succeeded' }}"},
        timeout=300, on_failure="abort", output={"n": "{{ d.result | length }}"},
    ), pack_dir=None)
    assert len(values["workflow"]["tasks"]) == 4


def test_a_workflow_entry_point_and_block_together_are_refused(tmp_path):
    (tmp_path / "wf.yaml").write_text("tasks: [{name: a, action: core.echo}]\n")
    spec = workflow({"name": "a", "action": "core.echo"})
    assert "workflow" in fields_of({**spec, "entry_point": "wf.yaml"}, tmp_path)


def test_a_workflow_file_error_names_that_file_and_line(tmp_path):
    (tmp_path / "actions").mkdir()
    (tmp_path / "actions" / "wf.yaml").write_text(
        "tasks:\n  - name: a\n    action: core.echo\n    depends_on: [zzz]\n")
    with pytest.raises(ValidationError) as caught:
        action_spec.normalize({"name": "wf", "runner_type": "workflow", "entry_point": "wf.yaml"},
                              pack_dir=tmp_path)
    details = caught.value.details
    assert (details["file"], details["line"], details["field"]) == (
        "actions/wf.yaml", 4, "tasks.0.depends_on")


def test_a_symlinked_entry_point_cannot_leave_the_pack(tmp_path):
    pack = tmp_path / "pack"
    (pack / "actions").mkdir(parents=True)
    (tmp_path / "secret.py").write_text("x = 1\n")
    (pack / "actions" / "link.py").symlink_to(tmp_path / "secret.py")
    fields = fields_of({"name": "a", "runner_type": "python", "entry_point": "actions/link.py"},
                       pack)
    assert fields == {"entry_point": "points outside the pack folder"}


def test_http_config_fields_may_be_single_templates_rendered_at_run_time():
    values = action_spec.normalize({"name": "h", "runner_type": "http", "http_config": {
        "url": "{{ params.url }}", "method": "{{ params.method }}",
        "headers": "{{ params.headers }}", "success_status": "{{ params.ok }}"}}, pack_dir=None)
    assert values["http_config"]["headers"] == "{{ params.headers }}"
    assert "http_config.headers" in fields_of({"name": "h", "runner_type": "http",
                                               "http_config": {"url": "x", "headers": [1]}})
