"""deploy/systemd: one unit per role that runs what `attune up`'s supervisor runs, as the
service user, restarted on failure; checked by `systemd-analyze verify` where it exists."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from nameko_services import cli
from nameko_services.config import PROJECT_ROOT
from nameko_services.domain.supervision import SERVICES

UNITS = PROJECT_ROOT / "deploy" / "systemd"
INSTALLED = Path("/opt/attune")  # where the units expect the checkout (docs/deploy.md)


def parse(path: Path) -> dict[str, dict[str, list[str]]]:
    """Sections → key → values (systemd allows a key more than once, Environment= for one)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)
    return sections


def unit_for(role: str) -> Path:
    return UNITS / (f"attune-{role}@.service" if role in SERVICES else f"attune-{role}.service")


@pytest.mark.parametrize("role", [*SERVICES, cli.GATEWAY])
def test_each_role_runs_the_supervisors_command_as_the_service_user_restarted_on_failure(role):
    service = parse(unit_for(role))["Service"]
    expected = cli.command_for(role, INSTALLED / "nameko.yaml")
    installed_bin = str(INSTALLED / ".venv" / "bin")
    assert shlex.split(service["ExecStart"][0]) == [
        arg.replace(str(cli.BIN), installed_bin) for arg in expected]
    assert service["User"] == ["attune"] and service["Group"] == ["attune"]
    assert service["Restart"] == ["on-failure"]
    assert service["WorkingDirectory"] == [str(INSTALLED)]
    environment = dict(item.split("=", 1) for item in service["Environment"])
    replica = f"{role}-%i" if role in SERVICES else role
    assert environment["ATTUNE_REPLICA"] == replica
    assert environment["ATTUNE_CONFIG"] == str(INSTALLED / "nameko.yaml")
    assert not any(key.endswith(("PASSWORD", "SECRET", "KEYS")) for key in environment)
    assert parse(unit_for(role))["Install"]["WantedBy"] == ["attune.target"]


def test_the_service_user_is_the_shipped_configurations():
    section = cli.load_config(PROJECT_ROOT / "nameko.yaml")["ATTUNE"]
    assert section["service_user"] == "attune"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_analyze_verifies_the_units(tmp_path):
    """The units as installed at this checkout (their paths pointed here), one instance each."""
    names = []
    for path in sorted(UNITS.iterdir()):
        text = path.read_text().replace(str(INSTALLED), str(PROJECT_ROOT))
        (tmp_path / path.name).write_text(text)
        if path.name.endswith("@.service"):
            instance = path.name.replace("@.service", "@1.service")
            (tmp_path / instance).symlink_to(tmp_path / path.name)
            names.append(instance)
        else:
            names.append(path.name)
    done = subprocess.run(["systemd-analyze", "verify", *(str(tmp_path / n) for n in names)],
                          capture_output=True, text=True, timeout=120, check=False)
    problems = [line for line in (done.stdout + done.stderr).splitlines()
                if str(tmp_path) in line or "attune" in line]
    assert done.returncode == 0 and not problems, done.stdout + done.stderr


def test_a_host_without_a_gateway_has_an_exporter_over_the_units_shared_folder():
    exporter = parse(UNITS / "attune-metrics.service")
    command = shlex.split(exporter["Service"]["ExecStart"][0])
    assert command[:2] == [str(INSTALLED / ".venv" / "bin" / "attune"), "metrics"]
    assert "metrics" in {command.name for command in cli.OPERATOR_COMMANDS}
    shared = "PROMETHEUS_MULTIPROC_DIR=/var/lib/attune/metrics"
    assert shared in exporter["Service"]["Environment"]
    for role in [*SERVICES, cli.GATEWAY]:
        assert shared in parse(unit_for(role))["Service"]["Environment"]
    assert exporter["Service"]["User"] == ["attune"]
    assert exporter["Install"]["WantedBy"] == ["attune.target"]
