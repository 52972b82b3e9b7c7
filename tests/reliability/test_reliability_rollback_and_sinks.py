"""The weak spots of apply, one by one: a rotation whose verification fails rolls back; a key
whose material cannot be stored is deleted again; a sink that cannot drop a deleted key's
material does not fail the delete; state reflects exactly what a half-done action did."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from reliability_kit import (
    JOURNAL_PATH,
    PLAN_PATH,
    check_invariants,
    clean_env,
    copy_project,
    new_project,
    past,
    read_state,
    run,
    sandbox,
    serial,
)
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.sinks import open_sink
from orchestrator.sinks.filesink import FileSink
from orchestrator.store.journal import Journal
from orchestrator.wiring import Wiring, open_exchange

runner = CliRunner()

VERIFIED_PLAN = """\
version: 1
exchange: {kind: sandbox}
defaults:
  rotate_after: 30d
  grace: 0s
  secrets: file:secrets/
  ips: [203.0.113.10]
subaccounts:
  - name: quant
    email: quant@example.com
    keys:
      - label: Checked
        profile: quant
        key_type: ed25519
        verify: true
      - label: CheckedHmac
        profile: quant
        key_type: hmac
        verify: true
"""


def cli(*args: str, wiring: Wiring | None = None) -> tuple[int, str]:
    result = runner.invoke(app, list(args), catch_exceptions=False, obj=wiring)
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def live_names(project: Path) -> list[str]:
    emu = sandbox(project)
    return sorted(k.api_name for s in emu.accounts.subs.values() for k in s.keys.values())


@pytest.fixture(scope="module")
def verified_base(tmp_path_factory) -> Path:
    """Two keys with `verify: true`, made 31 days ago. Their whitelist does not hold the
    caller's address, so the new key's apiRestrictions call fails and rotation must roll back."""
    project = new_project(tmp_path_factory.mktemp("verify") / "base", VERIFIED_PLAN)
    done = run(project, "apply", "--auto-approve", ORCHESTRATOR_NOW=past())
    assert done.returncode == 0, done.stderr
    return project


def test_failed_verification_rolls_the_rotation_back(verified_base, tmp_path):
    project = copy_project(verified_base, tmp_path / "p")
    before = read_state(project)
    done = run(project, "apply", "--auto-approve")
    assert done.returncode == 1
    assert done.stdout.count("rotation rolled back") == 2, done.stdout
    assert live_names(project) == ["orc-example.Checked-g1", "orc-example.CheckedHmac-g1"]
    after = read_state(project)
    assert after["serial"] > before["serial"]
    for address, record in before["keys"].items():
        assert after["keys"][address]["api_key"] == record["api_key"]
        assert after["keys"][address]["previous"] == []
        sink = open_sink("file:secrets/", project)
        assert sink.read_current(address).api_key == record["api_key"]
        assert sink.read_pending(address) is None
    assert not Journal(project / JOURNAL_PATH).pending()
    assert "rolled_back" in (project / "state" / "audit.jsonl").read_text()
    assert run(project, "log", "verify").returncode == 0


@pytest.mark.parametrize("nth", [1, 2])
def test_crash_in_the_middle_of_a_rollback_leaves_no_orphan(verified_base, tmp_path, nth):
    project = copy_project(verified_base, tmp_path / "p")
    before = read_state(project)
    crashed = run(
        project, "apply", "--auto-approve", ORCHESTRATOR_CRASH_AT=f"after_rollback_state#{nth}"
    )
    assert crashed.returncode == -signal.SIGKILL
    again = run(project, "apply", "--auto-approve")
    assert "recovered:" in again.stdout and "Traceback" not in again.stderr
    assert live_names(project) == ["orc-example.Checked-g1", "orc-example.CheckedHmac-g1"]
    after = read_state(project)
    for address, record in before["keys"].items():
        assert after["keys"][address]["api_key"] == record["api_key"]
        assert (
            open_sink("file:secrets/", project).read_current(address).api_key == record["api_key"]
        )
    assert not Journal(project / JOURNAL_PATH).pending()


def test_a_crash_as_a_rollback_begins_leaves_no_orphan(verified_base, tmp_path):
    """Killed once the failed rotation is settled on rolling back and before anything is
    undone: the new key, recorded in state but never promoted, is deleted by the next run."""
    project = copy_project(verified_base, tmp_path / "p")
    before = read_state(project)
    crashed = run(project, "apply", "--auto-approve", ORCHESTRATOR_CRASH_AT="rollback_begun")
    assert crashed.returncode == -signal.SIGKILL
    again = run(project, "apply", "--auto-approve")
    assert "recovered: quant/Checked:" in again.stdout, again.stdout + again.stderr
    assert "Traceback" not in again.stderr
    assert live_names(project) == ["orc-example.Checked-g1", "orc-example.CheckedHmac-g1"]
    assert_old_keys_current(project, before)
    assert not Journal(project / JOURNAL_PATH).pending()


def assert_old_keys_current(project: Path, before: dict) -> None:
    """State and the sink hold each label's key from `before`, and that key is live."""
    after = read_state(project)
    emu = sandbox(project)
    live = {k.api_key for s in emu.accounts.subs.values() for k in s.keys.values()}
    sink = open_sink("file:secrets/", project)
    for address, record in before["keys"].items():
        assert after["keys"][address]["api_key"] == record["api_key"]
        assert sink.read_current(address).api_key == record["api_key"] in live
        assert sink.read_pending(address) is None


HMAC_PLAN = VERIFIED_PLAN.replace("        verify: true\n", "")

#: the command line in a process whose file sink refuses every promotion
REFUSING_PROMOTE = """\
import sys
from orchestrator.sinks.filesink import FileSink

def refuse(self, address, generation=None):
    raise OSError(13, "Permission denied")

FileSink.promote = refuse
from orchestrator.cli import main

main()
"""


def run_refusing_promote(project: Path, *args: str, **env: str):
    return subprocess.run(
        [sys.executable, "-c", REFUSING_PROMOTE, *args],
        cwd=project,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def unverified_base(tmp_path_factory) -> Path:
    """Two keys without `verify`, made 31 days ago: due for rotation."""
    project = new_project(tmp_path_factory.mktemp("promote") / "base", HMAC_PLAN)
    done = run(project, "apply", "--auto-approve", ORCHESTRATOR_NOW=past())
    assert done.returncode == 0, done.stderr
    return project


def test_recovery_finishes_a_rollback_begun_rather_than_adopting_the_new_key(
    unverified_base, tmp_path
):
    """A rotation whose promotion failed is killed as its rollback begins. Recovery must
    finish the rollback, not promote the new key it is about to delete: the sink would then
    hand bots the material of a deleted key."""
    project = copy_project(unverified_base, tmp_path / "p")
    before = read_state(project)
    crashed = run_refusing_promote(
        project, "apply", "--auto-approve", ORCHESTRATOR_CRASH_AT="rollback_begun"
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stdout + crashed.stderr
    again = run_refusing_promote(project, "apply", "--auto-approve")
    assert "Traceback" not in again.stderr, again.stderr
    assert "finished rolling back the rotation to orc-example.Checked-g2" in again.stdout
    assert again.stdout.count("rotation rolled back") == 2, again.stdout
    assert live_names(project) == ["orc-example.Checked-g1", "orc-example.CheckedHmac-g1"]
    assert_old_keys_current(project, before)
    assert not Journal(project / JOURNAL_PATH).pending()


@pytest.fixture
def small(tmp_path, monkeypatch) -> Path:
    project = new_project(tmp_path / "p", HMAC_PLAN)
    monkeypatch.chdir(project)
    return project


@pytest.mark.parametrize("failing", ["hmac", "ed25519-with-api-key", "promote"])
def test_a_key_whose_material_cannot_be_stored_is_deleted_again(small, monkeypatch, failing):
    real_write, real_promote = FileSink.write_pending, FileSink.promote

    def write_pending(self, material):
        if failing == "hmac" and material.key_type == "hmac":
            raise OSError(28, "No space left on device")
        if failing.startswith("ed25519") and material.key_type == "ed25519" and material.api_key:
            raise OSError(28, "No space left on device")
        return real_write(self, material)

    def promote(self, address, generation=None):
        if failing == "promote" and address.endswith("CheckedHmac"):
            raise OSError(13, "Permission denied")
        return real_promote(self, address, generation)

    monkeypatch.setattr(FileSink, "write_pending", write_pending)
    monkeypatch.setattr(FileSink, "promote", promote)
    code, output = cli("apply", "--auto-approve")
    assert code == 1 and "the key was deleted again" in output, output
    assert len(live_names(small)) == 1  # the other key was made and kept
    state = read_state(small)
    assert len(state["keys"]) == 1
    assert not Journal(small / JOURNAL_PATH).pending()
    assert not list((small / "secrets").rglob("*.pending.json"))
    monkeypatch.undo()
    monkeypatch.chdir(small)
    assert cli("apply", "--auto-approve")[0] == 0
    check_invariants(small, unmanaged=(), cli=cli)


def test_delete_succeeds_when_the_sink_cannot_drop_old_material(small, monkeypatch):
    from datetime import UTC, datetime, timedelta

    monkeypatch.setenv("ORCHESTRATOR_NOW", past())
    assert cli("apply", "--auto-approve")[0] == 0
    monkeypatch.setenv("ORCHESTRATOR_NOW", datetime.now(UTC).isoformat())

    def broken(self, address, api_key):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(FileSink, "destroy", broken)
    code, output = cli("apply", "--auto-approve")
    assert code == 0, output
    assert "previous key deleted" in output and "warning: could not remove" in output
    state = read_state(small)
    assert all(record["previous"] == [] for record in state["keys"].values())
    assert live_names(small) == ["orc-example.Checked-g2", "orc-example.CheckedHmac-g2"]
    monkeypatch.undo()
    monkeypatch.chdir(small)
    later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    monkeypatch.setenv("ORCHESTRATOR_NOW", later)
    code, output = cli("plan", "--detailed-exitcode")
    assert code == 2 and "destroy material of deleted key(s) g1" in output, output
    assert cli("apply", "--auto-approve")[0] == 0
    assert not list((small / "secrets").rglob("*.g1.json"))
    assert cli("plan", "--detailed-exitcode")[0] == 0


def refusing_delete_ips(settings, project_dir, subaccount_emails=()):
    """The plan's exchange, except that every delete_ips call is refused."""
    from orchestrator.exchange.errors import BadRequest

    client = open_exchange(settings, project_dir, subaccount_emails)

    async def refuse(email, api_key, ips):
        raise BadRequest("refused", code=-1102, endpoint="delete_ips")

    client.delete_ips = refuse
    return client


def test_state_records_what_a_half_done_ip_update_did(small):
    assert cli("apply", "--auto-approve")[0] == 0
    plan = small / PLAN_PATH
    plan.write_text(plan.read_text().replace("ips: [203.0.113.10]", "ips: [203.0.113.11]"))
    before = serial(small)
    code, output = cli("apply", "--auto-approve", wiring=Wiring(open_exchange=refusing_delete_ips))
    assert code == 1, output
    state = read_state(small)
    assert state["serial"] > before
    for record in state["keys"].values():  # the add happened, the delete did not
        assert record["ips"] == ["203.0.113.10", "203.0.113.11"]
    assert cli("apply", "--auto-approve")[0] == 0
    check_invariants(small, serial_before=before, unmanaged=(), cli=cli)
    assert json.loads((small / "state" / "example.state.json").read_text())["keys"]
