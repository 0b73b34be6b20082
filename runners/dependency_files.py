"""A pack's dependency files, checked before any installer reads them (issue #14).

Nothing in `requirements.txt` (and the files it nests with `-r`/`-c`), `package.json`, its lock
files or `.npmrc` may make pip or npm read a file outside the pack, use another index or
registry, or fetch from a URL: packages come from the index and registry the worker is
configured with, or from files inside the pack. Everything else is refused with the file, the
line (or the dependency) and the reason. A file outside the pack is never opened, so no message
can quote one.

Pure (standard library only): the pack loader checks at registration and reload, and
`environments` checks again right before it builds (the folder may have changed since).
"""

from __future__ import annotations

import codecs
import json
import os
import re
import shlex
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

REQUIREMENTS = "requirements.txt"
PACKAGE_JSON = "package.json"
LOCK_FILES = ("package-lock.json", "npm-shrinkwrap.json")
NPMRC = ".npmrc"
MAX_NESTING = 5  # -r/-c files below requirements.txt
MAX_REQUIREMENTS_BYTES = 256 * 1024  # all of requirements.txt's files together
MAX_JSON_BYTES = 32 * 1024 * 1024

# pip's own regexes (pip/_internal/req/req_file.py, utils/encoding.py): the lines seen here are
# the lines pip sees.
_COMMENT = re.compile(r"(^|\s+)#.*$")
_CODING = re.compile(rb"coding[:=]\s*([-\w.]+)")
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16-be"), (codecs.BOM_UTF16_LE, "utf-16-le"),
         (codecs.BOM_UTF32, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32-be"),
         (codecs.BOM_UTF32_LE, "utf-32-le"))
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_EXTRAS = re.compile(r"^(.+)(\[[^\]]+\])$")
_ARCHIVES = (".whl", ".zip", ".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tbz", ".tar.xz", ".txz",
             ".tlz", ".tar.lz", ".tar.lzma")

# Harmless pip options: no value, or a value checked by its pattern.
_FLAGS = ("--pre", "--prefer-binary", "--require-hashes")
_VALUED = {
    "--hash": re.compile(r"^[a-z0-9]+:[0-9a-fA-F]+$"),
    "--only-binary": re.compile(r"^[A-Za-z0-9._:,-]+$"),
    "--no-binary": re.compile(r"^[A-Za-z0-9._:,-]+$"),
}
_NESTED = {"-r": "requirements", "--requirement": "requirements", "-c": "constraints",
           "--constraint": "constraints"}
_REFUSED = {
    "-i": "another package index", "--index-url": "another package index",
    "--extra-index-url": "another package index", "-f": "another place to find packages",
    "--find-links": "another place to find packages",
    "--trusted-host": "a host trusted without TLS checks",
    "-e": "an editable install", "--editable": "an editable install",
}
_ALLOWED = ", ".join((*_FLAGS, *(f"{name}=..." for name in _VALUED), "-r/-c FILE in the pack"))

_NPM_FILE_SPEC = re.compile(r"^(file|link|portal|git\+file):", re.I)
_NPM_PATH = re.compile(r"^(\.|~/|/|[A-Za-z]:[/\\])")  # npm-package-arg's file specs
_NPM_TARBALL = re.compile(r"\.(tgz|tar\.gz|tar)$", re.I)  # a file name, when not a URL
_NPM_REGISTRY_SPEC = re.compile(r"^[\w.+^~<>=|* -]*$")
_NPM_NAME = re.compile(r"^(@[a-z0-9~-][a-z0-9._~-]*/)?[a-z0-9~-][a-z0-9._~-]*$")
_NPM_SECTIONS = ("dependencies", "devDependencies", "optionalDependencies", "peerDependencies")
_NPM_REGISTRY_TARBALLS = "https://registry.npmjs.org/"
_NPMRC_KEYS = frozenset({
    "audit", "engine-strict", "fund", "ignore-scripts", "include", "legacy-peer-deps",
    "loglevel", "omit", "package-lock", "prefer-offline", "prefer-online", "progress",
    "save-exact", "save-prefix", "strict-peer-deps", "update-notifier",
})


class DependencyFileError(ValueError):
    """A dependency file an installer must not be given: the file (relative to the pack), the
    line (None for JSON), the dependency or field it is about, and why."""

    def __init__(self, file: str, line: int | None, reason: str, field: str = "") -> None:
        where = f"{file}, line {line}" if line else file
        super().__init__(f"{where}: {f'{field}: ' if field else ''}{reason}")
        self.file, self.line, self.reason, self.field = file, line, reason, field


def check_pack(root: Path) -> None:
    """Check every dependency file of the pack folder `root`; DependencyFileError if any
    would reach outside it."""
    check_python(root)
    check_node(root)


def check_python(root: Path) -> None:
    """requirements.txt and the files it nests (pip's parser, line by line)."""
    real = Path(os.path.realpath(root))
    if (real / REQUIREMENTS).is_file() or (real / REQUIREMENTS).is_symlink():
        _Requirements(real).check(real / REQUIREMENTS, depth=0)


def check_node(root: Path) -> None:
    """package.json, its lock files and .npmrc (only read by npm when package.json exists)."""
    real = Path(os.path.realpath(root))
    if not ((real / PACKAGE_JSON).is_file() or (real / PACKAGE_JSON).is_symlink()):
        return
    _check_package_json(_load_json(real, PACKAGE_JSON))
    for name in LOCK_FILES:
        if (real / name).exists() or (real / name).is_symlink():
            _check_lock_file(name, _load_json(real, name))
    if (real / NPMRC).exists() or (real / NPMRC).is_symlink():
        text = _read(real, real / NPMRC, MAX_JSON_BYTES, "is too large")
        _check_npmrc(text.decode("utf-8", "replace"))


# -- shared ----------------------------------------------------------------------------------


def _shown(root: Path, path: Path) -> str:
    """How a file inside the pack is named in messages (its path relative to the pack)."""
    return path.relative_to(root).as_posix()


def _within(root: Path, path: Path) -> bool:
    """Does `path`, with its links resolved, lie in `root` (itself resolved)?"""
    real = Path(os.path.realpath(path))
    return real == root or root in real.parents


def _read(root: Path, path: Path, limit: int, too_big: str) -> bytes:
    """The bytes of a regular file of the pack; a link that leads out of it is refused
    without being opened."""
    name = _shown(root, path)
    if not _within(root, path):
        raise DependencyFileError(name, None, "is a link to a file outside the pack")
    if not path.is_file():
        raise DependencyFileError(name, None, "is not a regular file")
    with path.open("rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise DependencyFileError(name, None, too_big)
    return data


def _quoted(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")


# -- requirements.txt ----------------------------------------------------------------------


def _decode(data: bytes, name: str) -> str:
    """The text pip reads (its `auto_decode`: a byte-order mark, else a `coding:` comment in
    the first two lines). Without either pip uses the worker's locale, so the text must then
    be ASCII to read the same everywhere."""
    encoding, start = "ascii", 0
    for bom, bom_encoding in _BOMS:
        if data.startswith(bom):
            encoding, start = bom_encoding, len(bom)
            break
    else:
        for line in data.split(b"\n")[:2]:
            found = _CODING.search(line) if line[:1] == b"#" else None
            if found:
                encoding = found.group(1).decode("ascii")
                break
    try:
        return data[start:].decode(encoding)
    except LookupError as exc:
        raise DependencyFileError(name, 1, f"declares an unknown encoding {encoding!r}") from exc
    except UnicodeDecodeError as exc:
        line_no = data[start:start + exc.start].count(b"\n") + 1
        hint = ("; save it as UTF-8 with a '# -*- coding: utf-8 -*-' first line (pip would "
                "otherwise decode it with the worker's locale)") if encoding == "ascii" else ""
        raise DependencyFileError(name, line_no, f"is not {encoding} text{hint}") from exc


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """pip's `join_lines` + `ignore_comments`: backslash continuations joined (numbered by
    their first line), comments and blank lines dropped."""
    joined: list[str] = []
    first = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.endswith("\\") or _COMMENT.match(line):
            if _COMMENT.match(line):
                line = " " + line
            if joined:
                yield first, "".join([*joined, line])
                joined = []
            else:
                yield number, line
        else:
            if not joined:
                first = number
            joined.append(line.strip("\\"))
    if joined:
        yield first, "".join(joined)


def _requirement_and_options(line: str) -> tuple[str, str]:
    """pip's `break_args_options`: words up to the first one starting with '-', and the rest."""
    words = line.split(" ")
    for index, word in enumerate(words):
        if word.startswith("-"):
            return " ".join(words[:index]), " ".join(words[index:])
    return line, ""


class _Requirements:
    """One walk over requirements.txt and its nested files, with a shared size budget."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.budget = MAX_REQUIREMENTS_BYTES

    def check(self, path: Path, depth: int) -> None:
        """Check one file; `path` is as pip joins it (links unresolved), so nested files are
        found where pip finds them."""
        name = _shown(self.root, path)
        data = _read(self.root, path, self.budget, f"makes the requirements files larger than "
                     f"{MAX_REQUIREMENTS_BYTES // 1024} KiB together")
        self.budget -= len(data)
        for number, raw in _logical_lines(_decode(data, name)):
            line = _COMMENT.sub("", raw).strip()
            if not line:
                continue
            if "${" in line:
                raise DependencyFileError(name, number, "an environment variable reference "
                                          "(${...}): pip would fill in the worker's values")
            requirement, options = _requirement_and_options(line)
            if requirement:
                self._requirement(name, number, requirement)
            self._options(name, number, options, path, depth)

    def _inside(self, name: str, number: int, text: str, base: Path, what: str) -> Path:
        """`base / text`, refused unless it stays in the pack (with its links resolved)."""
        relative = PurePosixPath(text)
        why = ("an absolute path" if relative.is_absolute() else "'..'" if ".." in relative.parts
               else "a link leads out of it" if not _within(self.root, base / relative) else "")
        if why:
            raise DependencyFileError(name, number, f"{what}: outside the pack ({why})")
        return base / relative

    def _requirement(self, name: str, number: int, text: str) -> None:
        """A named requirement (from the worker's index) or a file inside the pack."""
        spec = text.split(";", 1)[0].strip()
        if _SCHEME.match(spec) or "://" in spec:
            kind = "a file: URL" if "file:" in spec.lower() else "a URL"
            raise DependencyFileError(name, number, f"{_quoted(spec)}: {kind}; dependencies "
                                      "come from the worker's package index or from files "
                                      "inside the pack")
        extras = _EXTRAS.match(spec)
        path = extras.group(1) if extras else spec
        if "/" in spec or spec.startswith(".") or path.lower().endswith(_ARCHIVES):
            self._inside(name, number, path, self.root, f"local path {_quoted(path)}")
        elif "@" in spec:
            raise DependencyFileError(name, number, f"{_quoted(spec)}: a direct reference "
                                      "(name @ URL); name a version from the package index")

    def _options(self, name: str, number: int, text: str, path: Path, depth: int) -> None:
        try:
            words = shlex.split(text)
        except ValueError as exc:
            raise DependencyFileError(name, number, f"unbalanced quotes ({exc})") from exc
        index = 0
        while index < len(words):
            word = words[index]
            option, equals, value = word.partition("=")
            if not word.startswith("--") and word[:2] in _NESTED | _REFUSED:
                option, value, equals = word[:2], word[2:], "=" if len(word) > 2 else ""
            takes_value = option in _VALUED or option in _NESTED or option in _REFUSED
            if takes_value and not equals:
                index += 1
                value = words[index] if index < len(words) else ""
            index += 1
            if option in _REFUSED:
                raise DependencyFileError(name, number, f"{option} ({_REFUSED[option]}) is not "
                                          "allowed: the worker's pip settings decide where "
                                          "packages come from")
            if option in _NESTED:
                self._nested(name, number, option, value, path, depth)
            elif option in _VALUED:
                if not _VALUED[option].match(value):
                    raise DependencyFileError(name, number, f"{option} {_quoted(value)}: not a "
                                              "valid value")
            elif option not in _FLAGS or equals:
                shown = word if word.startswith("-") else f"unexpected {_quoted(word)}"
                raise DependencyFileError(name, number, f"{shown}: not allowed here (allowed "
                                          f"options: {_ALLOWED})")

    def _nested(self, name: str, number: int, option: str, value: str, path: Path,
                depth: int) -> None:
        what = f"{option} {_quoted(value)}"
        if not value or _SCHEME.match(value):
            raise DependencyFileError(name, number, f"{what}: a nested {_NESTED[option]} file "
                                      "must be a file inside the pack")
        nested = self._inside(name, number, value, path.parent, what)
        if depth + 1 > MAX_NESTING:
            raise DependencyFileError(name, number, f"{what}: nested more than {MAX_NESTING} "
                                      "files deep")
        if not nested.is_file():
            raise DependencyFileError(name, number, f"{what}: no such file in the pack")
        self.check(nested, depth + 1)


# -- npm -----------------------------------------------------------------------------------


def _load_json(root: Path, name: str) -> Any:
    data = _read(root, root / name, MAX_JSON_BYTES, f"is larger than {MAX_JSON_BYTES >> 20} MiB")
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        line = getattr(exc, "lineno", None)
        raise DependencyFileError(name, line, "is not valid JSON") from exc


def _npm_spec(file: str, field: str, spec: Any) -> None:
    """A registry version, range or tag (or an `npm:` alias of one); nothing else."""
    if not isinstance(spec, str):
        raise DependencyFileError(file, None, "must be a version string", field)
    target = spec
    if spec.startswith("npm:"):
        alias, _, target = spec[4:].rpartition("@")
        if not alias:  # npm:name or npm:@scope/name, no version
            alias, target = spec[4:], ""
        if not _NPM_NAME.match(alias):
            raise DependencyFileError(file, None, f"{_quoted(spec)}: not a package name", field)
    target = target.strip()
    local = _NPM_PATH.match(target) or (_NPM_TARBALL.search(target) and ":" not in target)
    if _NPM_FILE_SPEC.match(target) or "file:" in target.lower():
        reason = "a file:/link: dependency reads the server's files"
    elif local:
        reason = "a local path: npm would read it from outside the pack"
    elif not _NPM_REGISTRY_SPEC.match(target):
        reason = ("not a registry version: git, URL and tarball dependencies are refused "
                  "(dependencies come from the worker's npm registry)")
    else:
        return
    raise DependencyFileError(file, None, f"{_quoted(spec)}: {reason}", field)


def _check_specs(file: str, prefix: str, deps: Any) -> None:
    if deps is None:
        return
    if not isinstance(deps, Mapping):
        raise DependencyFileError(file, None, "must map package names to versions", prefix)
    for dep, spec in deps.items():
        _npm_spec(file, f"{prefix}.{dep}", spec)


def _check_overrides(file: str, prefix: str, overrides: Any) -> None:
    """npm `overrides`: nested objects whose string leaves are specs (`$name` refers to one)."""
    if isinstance(overrides, Mapping):
        for key, value in overrides.items():
            _check_overrides(file, f"{prefix}.{key}", value)
    elif not (isinstance(overrides, str) and overrides.startswith("$")):
        _npm_spec(file, prefix, overrides)


def _check_package_json(manifest: Any) -> None:
    if not isinstance(manifest, Mapping):
        raise DependencyFileError(PACKAGE_JSON, None, "must be a JSON object")
    for section in _NPM_SECTIONS:
        _check_specs(PACKAGE_JSON, section, manifest.get(section))
    if "overrides" in manifest:
        _check_overrides(PACKAGE_JSON, "overrides", manifest["overrides"])
    if "workspaces" in manifest:
        raise DependencyFileError(PACKAGE_JSON, None, "workspaces are not supported (they are "
                                  "folders npm would read)", "workspaces")


def _check_locked(file: str, field: str, entry: Any) -> None:
    """One locked package: no link, and a `resolved` tarball from the npm registry only."""
    if not isinstance(entry, Mapping):
        raise DependencyFileError(file, None, "must be an object", field)
    if entry.get("link"):
        raise DependencyFileError(file, None, "a link to a folder is not allowed", field)
    resolved = entry.get("resolved")
    if resolved is not None and not (isinstance(resolved, str)
                                     and resolved.startswith(_NPM_REGISTRY_TARBALLS)):
        raise DependencyFileError(file, None, f"resolved {_quoted(str(resolved))}: only "
                                  f"{_NPM_REGISTRY_TARBALLS} tarballs are allowed (npm fetches "
                                  "them from the worker's registry)", field)
    version = entry.get("version")
    if isinstance(version, str) and _SCHEME.match(version) and not version.startswith("npm:"):
        _npm_spec(file, f"{field}.version", version)
    for name, nested in (entry.get("dependencies") or {}).items():
        if isinstance(nested, Mapping):  # lockfile v1 nests entries; v2+ lists ranges here
            _check_locked(file, f"{field}.dependencies.{name}", nested)


def _check_lock_file(file: str, lock: Any) -> None:
    if not isinstance(lock, Mapping):
        raise DependencyFileError(file, None, "must be a JSON object")
    for key, entry in (lock.get("packages") or {}).items():
        parts = PurePosixPath(key).parts
        if key and (key.startswith("/") or ".." in parts or parts[0] != "node_modules"):
            raise DependencyFileError(file, None, "a package outside node_modules",
                                      f"packages.{key}")
        if key == "" and isinstance(entry, Mapping):
            for section in _NPM_SECTIONS:
                _check_specs(file, f'packages."".{section}', entry.get(section))
            continue
        _check_locked(file, f"packages.{key}", entry)
    for name, entry in (lock.get("dependencies") or {}).items():
        _check_locked(file, f"dependencies.{name}", entry)


def _check_npmrc(text: str) -> None:
    """Only settings that change how npm installs, never where from or with which files."""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        key = line.partition("=")[0].strip()
        if "${" in line:
            raise DependencyFileError(NPMRC, number, "an environment variable reference "
                                      "(${...}) is not allowed", key)
        if key not in _NPMRC_KEYS:
            raise DependencyFileError(NPMRC, number, "not allowed (registries, credentials, "
                                      "certificates and paths are the worker's settings; "
                                      f"allowed: {', '.join(sorted(_NPMRC_KEYS))})", key)
