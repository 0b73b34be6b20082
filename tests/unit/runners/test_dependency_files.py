"""Dependency files that would make pip or npm reach outside the pack are refused, naming the
file, the line (or the dependency) and why, and never quoting a file outside the pack."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runners.dependency_files import (
    MAX_NESTING,
    MAX_REQUIREMENTS_BYTES,
    DependencyFileError,
    check_node,
    check_pack,
    check_python,
)

SECRET = "root:x:0:0:the-outside-secret:/root:/bin/bash"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file beside the pack, holding a line no message may ever show."""
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET + "\n")
    return secret


@pytest.fixture
def pack(tmp_path: Path) -> Path:
    folder = tmp_path / "pack"
    folder.mkdir()
    return folder


def refused(check, folder: Path) -> DependencyFileError:
    with pytest.raises(DependencyFileError) as caught:
        check(folder)
    assert SECRET not in str(caught.value) and "the-outside-secret" not in str(caught.value)
    return caught.value


def requirements(pack: Path, text: str | bytes, name: str = "requirements.txt") -> Path:
    path = pack / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize("text", [
    "requests==2.28.0\n",
    "# pinned for the API client\nrequests>=2.25,<3  # inline comment\n\n",
    "requests[security]==2.28.0 ; python_version >= '3.8'\n",
    "requests==2.28.0 --hash=sha256:0123abcd --hash=sha256:4567ef\n",
    "--require-hashes\n--pre\n--prefer-binary\n--only-binary :all:\n--no-binary=requests\n",
    "requests \\\n    ==2.28.0\n",
    "./vendor/tool-1.0-py3-none-any.whl\nvendor/other-2.0.tar.gz\n",
    "\ufeffrequests==2.28.0\n",  # a UTF-8 mark, as some editors write
    "# -*- coding: utf-8 -*-\n# maintained by Jürgen\nrequests\n",
    "requests  # ${NOT_EXPANDED_IN_A_COMMENT}\n",
])
def test_named_requirements_harmless_options_and_files_in_the_pack_pass(pack, text):
    if "vendor" in text:
        (pack / "vendor").mkdir()
    requirements(pack, text.encode("utf-8"))
    check_python(pack)


@pytest.mark.parametrize("text, line, says", [
    ("-r /etc/passwd\n", 1, "-r '/etc/passwd': outside the pack (an absolute path)"),
    ("requests\n--requirement=/etc/passwd\n", 2, "--requirement '/etc/passwd'"),
    ("-r/etc/passwd\n", 1, "-r '/etc/passwd': outside the pack"),
    ("-c /etc/passwd\n", 1, "-c '/etc/passwd': outside the pack"),
    ("--constraint ../constraints.txt\n", 1, "outside the pack ('..')"),
    ("-i http://index.invalid/simple\n", 1, "-i (another package index)"),
    ("--index-url=http://index.invalid/simple\n", 1, "--index-url (another package index)"),
    ("--extra-index-url http://index.invalid\n", 1, "--extra-index-url"),
    ("-f /etc\n", 1, "-f (another place to find packages)"),
    ("--find-links=https://evil.invalid/\n", 1, "--find-links"),
    ("--trusted-host evil.invalid\n", 1, "--trusted-host"),
    ("-e /srv/elsewhere\n", 1, "-e (an editable install)"),
    ("--editable=git+https://evil.invalid/x#egg=x\n", 1, "--editable"),
    ("file:///etc/passwd\n", 1, "a file: URL"),
    ("requests @ file:///etc/passwd\n", 1, "a file: URL"),
    ("git+file:///srv/repo#egg=x\n", 1, "a file: URL"),
    ("https://evil.invalid/x-1.0-py3-none-any.whl\n", 1, "a URL"),
    ("git+https://evil.invalid/x.git\n", 1, "a URL"),
    ("/etc/x-1.0.tar.gz\n", 1, "local path '/etc/x-1.0.tar.gz': outside the pack"),
    ("../x-1.0-py3-none-any.whl\n", 1, "outside the pack ('..')"),
    ("requests==${SECRET_VERSION}\n", 1, "environment variable"),
    ("-r ${HOME}/req.txt\n", 1, "environment variable"),
    ("--use-feature=truststore\n", 1, "--use-feature=truststore: not allowed here"),
    ("--ind http://evil.invalid\n", 1, "--ind: not allowed here"),  # optparse abbreviation
    ("requests --global-option=--x\n", 1, "--global-option=--x: not allowed here"),
    ("-Cfoo=bar\n", 1, "-Cfoo=bar: not allowed here"),
    ("--pre /etc/passwd\n", 1, "unexpected '/etc/passwd'"),
    ("requests --hash=/etc/passwd\n", 1, "--hash '/etc/passwd': not a valid value"),
    ("requests -r 'unbalanced\n", 1, "unbalanced quotes"),
    ("# fine\n\nrequests \\\n  -r /etc/passwd\n", 3, "-r '/etc/passwd'"),  # continued line
])
def test_requirements_that_reach_outside_are_refused_naming_the_line(pack, text, line, says):
    requirements(pack, text)
    error = refused(check_python, pack)
    assert (error.file, error.line) == ("requirements.txt", line)
    assert says in error.reason
    assert str(error).startswith(f"requirements.txt, line {line}: ")


def test_a_declared_encoding_cannot_smuggle_an_option_past_the_check(pack):
    # In UTF-7 "+AC0-" is "-": pip reads this line as `-r /etc/passwd`, and so does the check.
    requirements(pack, b"# coding: utf-7\n+AC0-r /etc/passwd\n")
    error = refused(check_python, pack)
    assert error.line == 2 and error.reason.startswith("-r '/etc/passwd'")


def test_non_ascii_text_without_a_declared_encoding_is_refused(pack):
    # pip would decode it with the worker's locale, which may split lines differently.
    requirements(pack, "# Jürgen's pins\nrequests\n".encode())
    error = refused(check_python, pack)
    assert error.line == 1 and "coding: utf-8" in error.reason


def test_nested_files_inside_the_pack_are_followed_and_checked_too(pack):
    requirements(pack, "-r requirements/base.txt\n")
    requirements(pack, "-c constraints.txt\nrequests\n", "requirements/base.txt")
    requirements(pack, "requests<3\n", "requirements/constraints.txt")
    check_python(pack)
    requirements(pack, "requests<3\n\n--index-url http://index.invalid\n",
                 "requirements/constraints.txt")
    error = refused(check_python, pack)
    assert (error.file, error.line) == ("requirements/constraints.txt", 3)


def test_a_link_that_leads_out_of_the_pack_is_refused_without_reading_it(pack, outside):
    (pack / "inner.txt").symlink_to(outside)
    requirements(pack, "requests\n-r inner.txt\n")
    error = refused(check_python, pack)
    assert error.line == 2 and "a link leads out of it" in error.reason
    (pack / "requirements.txt").unlink()
    (pack / "requirements.txt").symlink_to(outside)
    error = refused(check_python, pack)
    assert (error.file, error.line) == ("requirements.txt", None)
    assert "outside the pack" in error.reason


def test_nesting_is_capped_so_a_loop_ends(pack):
    requirements(pack, "-r requirements.txt\n")
    assert f"more than {MAX_NESTING}" in refused(check_python, pack).reason


def test_a_missing_nested_file_is_named(pack):
    requirements(pack, "-r extra.txt\n")
    assert "no such file in the pack" in refused(check_python, pack).reason


def test_the_requirements_files_together_are_capped_in_size(pack):
    line = "requests==2.28.0\n"
    requirements(pack, line * (MAX_REQUIREMENTS_BYTES // len(line) // 2 + 1), "half.txt")
    requirements(pack, "-r half.txt\n")
    check_python(pack)
    requirements(pack, "-r half.txt\n-r half.txt\n")
    error = refused(check_python, pack)
    assert error.file == "half.txt" and "together" in error.reason


def package_json(pack: Path, manifest: dict, name: str = "package.json") -> None:
    (pack / name).write_text(json.dumps(manifest))


def test_registry_versions_ranges_tags_and_aliases_pass(pack):
    package_json(pack, {"dependencies": {
        "axios": "^1.0.0", "a": "1.2.3", "b": ">=1.0.0 <2.0.0 || 3.x", "c": "latest",
        "d": "~1.2", "e": "*", "f": "", "g": "1.0.0 - 2.0.0", "h": "npm:@scope/real@^1.0.0",
    }, "devDependencies": {"jest": "^29"}, "overrides": {"axios": "$axios", "x": {".": "1.0.0"}}})
    check_node(pack)


@pytest.mark.parametrize("spec, says", [
    ("file:/etc", "file:/link:"),
    ("file:../elsewhere", "file:/link:"),
    ("link:../elsewhere", "file:/link:"),
    ("git+file:///srv/repo", "file:/link:"),
    ("npm:other@file:../elsewhere", "file:/link:"),
    ("../elsewhere", "a local path"),
    ("/srv/elsewhere", "a local path"),
    ("~/elsewhere", "a local path"),
    ("./vendor/lib.tgz", "a local path"),
    ("lib-1.0.0.tgz", "a local path"),
    ("git+https://evil.invalid/x.git", "not a registry version"),
    ("git+ssh://git@evil.invalid/x.git", "not a registry version"),
    ("https://evil.invalid/x-1.0.0.tgz", "not a registry version"),
    ("github:someone/x", "not a registry version"),
    ("someone/x", "not a registry version"),
])
def test_dependencies_other_than_registry_versions_are_refused_naming_them(pack, spec, says):
    package_json(pack, {"dependencies": {"axios": "^1.0.0"},
                        "optionalDependencies": {"evil": spec}})
    error = refused(check_node, pack)
    assert (error.file, error.field) == ("package.json", "optionalDependencies.evil")
    assert says in error.reason and repr(spec) in error.reason


def test_overrides_and_workspaces_cannot_reach_outside(pack):
    package_json(pack, {"overrides": {"axios": {"follow-redirects": "file:/etc"}}})
    assert refused(check_node, pack).field == "overrides.axios.follow-redirects"
    package_json(pack, {"workspaces": ["../../etc"]})
    assert refused(check_node, pack).field == "workspaces"


def test_lock_files_may_only_name_registry_tarballs(pack):
    package_json(pack, {"dependencies": {"axios": "^1.0.0"}})
    tarball = "https://registry.npmjs.org/axios/-/axios-1.0.0.tgz"
    lock = {"lockfileVersion": 3, "packages": {
        "": {"dependencies": {"axios": "^1.0.0"}},
        "node_modules/axios": {"version": "1.0.0", "resolved": tarball,
                               "dependencies": {"follow-redirects": "^1.15.0"}}}}
    package_json(pack, lock, "package-lock.json")
    check_node(pack)
    for key, entry, field in [
        ("node_modules/axios", {"link": True, "resolved": "../../etc"}, "node_modules/axios"),
        ("node_modules/axios", {"resolved": "file:/etc/x.tgz"}, "node_modules/axios"),
        ("node_modules/axios", {"resolved": "https://evil.invalid/a.tgz"}, "node_modules/axios"),
        ("../outside", {"version": "1.0.0"}, "../outside"),
    ]:
        package_json(pack, {"packages": {key: entry}}, "npm-shrinkwrap.json")
        error = refused(check_node, pack)
        assert (error.file, error.field) == ("npm-shrinkwrap.json", f"packages.{field}")
    (pack / "npm-shrinkwrap.json").unlink()
    package_json(pack, {"lockfileVersion": 1, "dependencies": {"axios": {
        "version": "1.0.0", "resolved": tarball,
        "dependencies": {"x": {"version": "file:../../x"}}}}}, "package-lock.json")
    assert refused(check_node, pack).field == "dependencies.axios.dependencies.x.version"


def test_npmrc_may_not_name_registries_credentials_or_paths(pack):
    package_json(pack, {"dependencies": {}})
    (pack / ".npmrc").write_text("; comment\nlegacy-peer-deps=true\nsave-exact = true\n")
    check_node(pack)
    for line in ("registry=https://evil.invalid/", "@scope:registry=https://evil.invalid/",
                 "//registry.npmjs.org/:_authToken=x", "cafile=/etc/passwd",
                 "userconfig=/etc/passwd", "loglevel=${SECRET}"):
        (pack / ".npmrc").write_text(f"legacy-peer-deps=true\n{line}\n")
        error = refused(check_node, pack)
        assert (error.file, error.line) == (".npmrc", 2)


def test_a_package_json_link_out_of_the_pack_is_refused_without_reading_it(pack, outside):
    (pack / "package.json").symlink_to(outside)
    error = refused(check_node, pack)
    assert (error.file, error.line) == ("package.json", None)


def test_a_pack_without_dependency_files_passes(pack):
    (pack / ".npmrc").write_text("registry=https://ignored-without-package-json.invalid/\n")
    check_pack(pack)
