"""Pack folders and archives → validated definitions, with errors naming file, line and field."""

import io
import os
import tarfile
from pathlib import Path

import pytest

from nameko_services.domain import pack_archive, pack_loader
from nameko_services.domain.errors import ValidationError
from tests.support.packs import BROKEN, FIXTURES, TEST_PACK, copy_pack, evil_tar_gz, tar_gz


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


def error_of(folder: Path) -> dict:
    with pytest.raises(ValidationError) as caught:
        pack_loader.load_pack(folder)
    return {"message": caught.value.message, **caught.value.details}


def test_the_test_pack_loads_with_every_kind_of_definition():
    pack = pack_loader.load_pack(TEST_PACK)
    assert (pack.ref, pack.version, pack.root) == ("test_pack", "1.0.0", TEST_PACK)
    assert [i.name for i in pack.actions] == ["echo", "echo_twice", "fail"]
    assert [i.name for i in pack.triggers] == ["hook"]
    assert [i.name for i in pack.rules] == ["echo_on_hook"]
    assert pack.meta == {"author": "Attune tests"}


def test_a_workflow_entry_point_file_is_read_into_the_workflow_block_not_an_action():
    pack = pack_loader.load_pack(TEST_PACK)
    workflow = next(i for i in pack.actions if i.name == "echo_twice").values
    assert workflow["entry_point"] == "actions/workflows/echo_twice.yaml"
    assert workflow["workflow"]["output"] == {"echoed": "{{ second.result }}"}
    assert all(i.file.name != workflow["entry_point"] for i in pack.actions)


def test_an_unreferenced_workflow_file_is_a_workflow_action_named_after_the_file(tmp_path):
    folder = write(tmp_path, {
        "pack.yaml": "ref: wf\n",
        "actions/workflows/deploy.yaml": "tasks:\n  - {name: a, action: core.noop}\n",
    })
    [deploy] = pack_loader.load_pack(folder).actions
    assert deploy.name == "deploy" and deploy.values["runner_type"] == "workflow"
    assert deploy.values["workflow"] == {"tasks": [{"name": "a", "action": "core.noop"}]}


def test_a_sensor_can_declare_its_custom_trigger_inline():
    pack = pack_loader.load_pack(FIXTURES / "sensor_pack")
    [sensor] = pack.sensors
    assert sensor.values["trigger_types"] == ["sensor_pack.file_changed"]
    assert sensor.values["poll_interval"] == 5.0


def test_inline_sensor_triggers_become_pack_triggers(tmp_path):
    folder = write(tmp_path, {
        "pack.yaml": "ref: s\n",
        "sensors/w.py": "class W: pass\n",
        "sensors/w.yaml": "name: w\nentry_point: w.py\ntrigger_types:\n  - {name: changed}\n",
    })
    pack = pack_loader.load_pack(folder)
    assert [t.name for t in pack.triggers] == ["changed"]
    assert pack.triggers[0].values["type"] == "custom"
    assert pack.sensors[0].values["entry_point"] == "sensors/w.py"


@pytest.mark.parametrize("broken, file, line, field", [
    ("bad_timeout", "actions/slow.yaml", 4, "timeout"),
    ("bad_yaml", "actions/echo.yaml", 5, None),
    ("bad_manifest", "pack.yaml", 2, "ref"),
])
def test_broken_fixture_packs_name_file_line_and_field(broken, file, line, field):
    error = error_of(BROKEN / broken)
    assert (error["file"], error["line"], error["field"]) == (file, line, field)
    assert error["message"].startswith(f"{file}, line {line}:")


@pytest.mark.parametrize("files, file, line, field", [
    ({"actions/a.yaml": "name: a\nrunner_type: shell\ncode: x\nretry:\n  max_attempts: 0\n"},
     "actions/a.yaml", 5, "retry.max_attempts"),
    ({"actions/a.yaml": "name: a\nrunner_type: shell\nentry_point: ../../etc/passwd\n"},
     "actions/a.yaml", 3, "entry_point"),
    ({"actions/a.yaml": "name: a\nrunner_type: shell\ncode: x\ntimout: 3\n"},
     "actions/a.yaml", 4, "timout"),
    ({"actions/a.yaml": "- not\n- a mapping\n"}, "actions/a.yaml", 1, None),
    ({"actions/a.yaml": "name: a\nrunner_type: shell\ncode: x\npack: other\n"},
     "actions/a.yaml", 4, "pack"),
    ({"actions/a.yaml": "name: a\nrunner_type: workflow\nworkflow:\n  tasks:\n"
                        "    - name: t\n      action: core.echo\n      when: '{{ ( }}'\n"},
     "actions/a.yaml", 7, "workflow.tasks.0.when"),
    ({"actions/a.yaml": "name: a\nrunner_type: shell\ncode: x\n",
      "actions/b.yaml": "name: a\nrunner_type: shell\ncode: y\n"}, "actions/b.yaml", 1, "name"),
    ({"triggers/t.yaml": "name: t\ntype: cron\nparameters:\n  expression: 'nope'\n"},
     "triggers/t.yaml", 4, "parameters.expression"),
    ({"rules/r.yaml": "name: r\ntrigger: x.y\naction: x.z\ncriteria: '{{ a == }}'\n"},
     "rules/r.yaml", 4, "criteria"),
    ({"sensors/s.yaml": "name: s\nentry_point: sensors/missing.py\ntrigger_types: [a.b]\n"},
     "sensors/s.yaml", 2, "entry_point"),
    ({"actions/a.yaml": "name: a\nrunner_type: shell\ncode: x\nparameters:\n"
                        "  when: {type: string, default: 2026-01-01}\n  n: {default: .nan}\n"},
     "actions/a.yaml", 6, "parameters.n.default"),
    ({"actions/a.yaml": 'name: a\nrunner_type: shell\ncode: "x\\0y"\n'},
     "actions/a.yaml", 3, "code"),
])
def test_bad_files_are_reported_with_file_line_and_field(tmp_path, files, file, line, field):
    write(tmp_path, {"pack.yaml": "ref: p\nversion: 1.0.0\n", **files})
    error = error_of(tmp_path)
    assert (error["file"], error["line"], error["field"]) == (file, line, field), error


def test_a_yaml_timestamp_stays_text_so_it_can_be_stored_as_json(tmp_path):
    write(tmp_path, {"pack.yaml": "ref: p\n", "actions/a.yaml":
                     "name: a\nrunner_type: shell\ncode: x\nparameters:\n"
                     "  when: {type: string, default: 2026-01-01}\n"})
    [action] = pack_loader.load_pack(tmp_path).actions
    assert action.values["parameters"]["when"]["default"] == "2026-01-01"


def test_a_folder_without_pack_yaml_is_rejected(tmp_path):
    error = error_of(tmp_path)
    assert error["file"] == "pack.yaml" and "missing" in error["message"]


def test_a_billion_laughs_file_is_refused_before_it_expands(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    write(tmp_path, {"pack.yaml": "\n".join(lines) + "\nref: p\n"})
    assert "yaml nodes" in error_of(tmp_path)["message"]


def test_dependency_files_are_fingerprinted_for_environment_rebuilds(tmp_path):
    folder = copy_pack(TEST_PACK, tmp_path)
    (folder / "requirements.txt").write_text("requests==2.28.0\n")
    first = pack_loader.load_pack(folder).meta["requirements_txt_sha256"]
    (folder / "requirements.txt").write_text("requests==2.31.0\n")
    assert pack_loader.load_pack(folder).meta["requirements_txt_sha256"] != first


def test_dependency_files_that_reach_outside_the_pack_are_a_located_422(tmp_path):
    folder = copy_pack(TEST_PACK, tmp_path)
    (folder / "requirements.txt").write_text("requests\n\n--extra-index-url http://x.invalid\n")
    error = error_of(folder)
    assert (error["file"], error["line"], error["field"]) == ("requirements.txt", 3, None)
    assert error["message"].startswith("requirements.txt, line 3: --extra-index-url")
    assert list(error["fields"]) == ["requirements.txt"]
    (folder / "requirements.txt").unlink()
    (folder / "package.json").write_text('{"dependencies": {"x": "link:../../x"}}')
    error = error_of(folder)
    assert (error["file"], error["line"], error["field"]) == ("package.json", None,
                                                               "dependencies.x")
    assert error["message"].startswith("package.json: field 'dependencies.x': 'link:../../x'")


def test_an_empty_pack_needs_a_valid_ref_and_version():
    assert pack_loader.empty("ok_ref").version == "0.1.0"
    with pytest.raises(ValidationError) as caught:
        pack_loader.empty("Bad Ref", "x y")
    assert set(caught.value.fields) == {"ref", "version"}


def test_an_archive_is_extracted_to_a_content_addressed_folder(tmp_path):
    data = tar_gz(TEST_PACK, top="anything")
    pack = pack_archive.extract(data, tmp_path, "7")
    assert pack.root.parent == tmp_path / "7" / "test_pack"
    assert pack.root.name.startswith("1.0.0-") and (pack.root / "actions/echo.py").is_file()
    again = pack_archive.extract(data, tmp_path, "7")
    assert again.root == pack.root and len(list(pack.root.parent.iterdir())) == 1
    assert list((tmp_path / ".incoming").iterdir()) == []


def test_a_rejected_archive_leaves_nothing_behind(tmp_path):
    with pytest.raises(ValidationError):
        pack_archive.extract(tar_gz(BROKEN / "bad_timeout"), tmp_path, "7")
    assert not (tmp_path / "7").exists()
    assert list((tmp_path / ".incoming").iterdir()) == []


@pytest.mark.parametrize("data, reason", [
    (evil_tar_gz("../escape"), "outside"),
    (evil_tar_gz("a/../../escape"), "outside"),
    (evil_tar_gz("link", link_to="../../x"), "outside"),
    (evil_tar_gz("sub/link", link_to="/etc/passwd"), "outside"),
    (b"plain text", "not a readable"),
    (b"", "empty"),
])
def test_hostile_archives_are_refused_with_the_reason(tmp_path, data, reason):
    with pytest.raises(ValidationError) as caught:
        pack_archive.extract(data, tmp_path, "7")
    assert reason in caught.value.fields["file"]
    assert not (tmp_path.parent / "escape").exists()


def test_a_link_that_stays_inside_the_pack_is_allowed(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(TEST_PACK, arcname=".")
        link = tarfile.TarInfo("actions/alias.py")
        link.type, link.linkname = tarfile.SYMTYPE, "echo.py"
        tar.addfile(link)
    pack = pack_archive.extract(buffer.getvalue(), tmp_path, "system")
    assert (pack.root / "actions" / "alias.py").read_text().startswith('"""Echo')


def test_an_archive_without_pack_yaml_is_refused(tmp_path):
    folder = write(tmp_path / "src", {"readme.txt": "hi"})
    with pytest.raises(ValidationError) as caught:
        pack_archive.extract(tar_gz(folder), tmp_path / "out", "1")
    assert "pack.yaml" in caught.value.fields["file"]


def test_the_shipped_core_pack_validates_with_the_actions_packs_md_promises():
    core = pack_loader.load_pack(FIXTURES.parents[2] / "packs" / "core")
    assert core.ref == "core"
    assert {"echo", "noop", "sleep", "http", "fail", "ask", "shell"} <= {
        i.name for i in core.actions}
    assert core.rules == []


def test_pack_yaml_container_image_user_is_kept_in_the_meta_for_the_worker(tmp_path):
    from nameko_services.worker.preparation import keeps_image_user

    write(tmp_path, {"pack.yaml": "ref: p\ncontainer:\n  image_user: true\n"})
    pack = pack_loader.load_pack(tmp_path)
    assert pack.meta["container"] == {"image_user": True}
    assert keeps_image_user({"meta": pack.meta})
    assert not keeps_image_user({"meta": {"container": {"image_user": False}}})
    assert not keeps_image_user({"meta": {}}) and not keeps_image_user(None)


@pytest.mark.parametrize(("manifest", "line", "field", "says"), [
    ("container: yes\n", 2, "container", "must be a mapping such as {image_user: true}"),
    ("container:\n  image_user: 'yes'\n", 3, "container.image_user", "must be true or false"),
    ("container:\n  user: root\n", 3, "container.user", "unknown key (known: image_user)"),
])
def test_a_bad_container_block_in_pack_yaml_is_named(tmp_path, manifest, line, field, says):
    write(tmp_path, {"pack.yaml": "ref: p\n" + manifest})
    error = error_of(tmp_path)
    assert (error["file"], error["line"], error["field"]) == ("pack.yaml", line, field), error
    assert says in error["message"]


@pytest.mark.parametrize("value", ["no", "false", "off", "outbond", "'None'"])
def test_a_pack_network_other_than_outbound_or_none_is_named(tmp_path, value):
    write(tmp_path, {"pack.yaml": f"ref: p\nnetwork: {value}\n"})
    error = error_of(tmp_path)
    assert (error["file"], error["line"], error["field"]) == ("pack.yaml", 2, "network"), error
    assert "must be one of: outbound, none" in error["message"]


@pytest.mark.parametrize("value", ["none", "outbound"])
def test_a_pack_says_whether_its_code_has_a_network(tmp_path, value):
    write(tmp_path, {"pack.yaml": f"ref: p\nnetwork: {value}\n"})
    assert pack_loader.load_pack(tmp_path).meta["network"] == value


def test_a_folder_archive_is_canonical_and_leaves_out_caches_and_an_env_link(tmp_path):
    folder = copy_pack(TEST_PACK, tmp_path)
    first = pack_archive.archive(folder)
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "x.pyc").write_bytes(b"\0")
    (folder / "node_modules").symlink_to("/somewhere/else/node_modules")
    os.utime(folder / "pack.yaml", (1, 1))
    assert pack_archive.archive(folder) == first  # same files, same bytes: same sha256
    (folder / "actions" / "echo.py").write_text("changed\n")
    assert pack_archive.archive(folder) != first
    unpacked = pack_archive.extract(pack_archive.archive(folder), tmp_path / "out", "7")
    assert (unpacked.root / "actions" / "echo.py").read_text() == "changed\n"


def test_a_folder_with_a_link_leaving_it_archives_but_does_not_unpack(tmp_path):
    folder = copy_pack(TEST_PACK, tmp_path)
    (folder / "actions" / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(ValidationError) as caught:
        pack_archive.extract(pack_archive.archive(folder), tmp_path / "out", "7")
    assert "outside" in caught.value.fields["file"]


def test_an_unpacked_folder_is_readable_by_the_sandboxes(tmp_path):
    folder = copy_pack(TEST_PACK, tmp_path)
    unpacked = pack_archive.extract(pack_archive.archive(folder), tmp_path / "out", "7")
    assert unpacked.root.stat().st_mode & 0o777 == 0o755
