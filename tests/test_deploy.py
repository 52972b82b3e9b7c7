"""The schedule files under deploy/ run what the README says, and the script works."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from orchestrator.config import init_project
from orchestrator.emulator import persist

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
JOB = "orchestrator rotate --due --auto-approve && orchestrator audit --fail-on high"


def test_kubernetes_cronjob_runs_rotate_then_audit_with_secret_credentials():
    job = yaml.safe_load((DEPLOY / "kubernetes" / "cronjob.yaml").read_text())
    assert job["kind"] == "CronJob" and job["spec"]["concurrencyPolicy"] == "Forbid"
    container = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == [JOB]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert set(env) == {"BINANCE_API_KEY", "BINANCE_API_SECRET", "ORCHESTRATOR_NOTIFY"}
    assert env["ORCHESTRATOR_NOTIFY"] == {
        "name": "orchestrator-notify",
        "key": "urls",
        "optional": True,
    }


def test_cron_and_systemd_call_the_scheduled_script():
    assert "deploy/scheduled.sh" in (DEPLOY / "cron" / "orchestrator").read_text()
    service = (DEPLOY / "systemd" / "orchestrator-rotate.service").read_text()
    assert "ExecStart=/srv/orchestrator/deploy/scheduled.sh" in service
    assert "EnvironmentFile=/etc/orchestrator/env" in service
    assert "OnCalendar=" in (DEPLOY / "systemd" / "orchestrator-rotate.timer").read_text()
    script = (DEPLOY / "scheduled.sh").read_text()
    assert "rotate --due --auto-approve" in script and "audit --fail-on high" in script


def test_cron_and_systemd_read_notification_targets_from_the_environment_file():
    cron = (DEPLOY / "cron" / "orchestrator").read_text()
    assert "set -a; . /etc/orchestrator/env; set +a" in cron  # exported to the script
    assert "#   ORCHESTRATOR_NOTIFY=" in cron
    service = (DEPLOY / "systemd" / "orchestrator-rotate.service").read_text()
    assert "ORCHESTRATOR_NOTIFY" in service and "EnvironmentFile=/etc/orchestrator/env" in service
    assert "ORCHESTRATOR_NOTIFY " in (DEPLOY / "scheduled.sh").read_text()


def whitelist_sandbox_master(project: Path) -> None:
    """Restrict the sandbox's master key to the in-process transport's caller IP, as a real
    master key should be restricted to the machine the orchestrator runs on."""
    data_file = project / "state" / "sandbox.json"
    data = persist.load(data_file)
    data["master"].update(status=2, ip_list=["127.0.0.1"])
    persist.save(data_file, data)


def scheduled_env(project: Path, **extra: str) -> dict[str, str]:
    bin_dir = Path(sys.executable).parent
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_NOTIFY")}
    return {
        **clean,
        "ORCHESTRATOR_PROJECT": str(project),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        **extra,
    }


def test_scheduled_script_passes_notification_targets_through(tmp_path: Path):
    from tests.notify.notify_kit import receiver

    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    init_project(tmp_path)
    orchestrator = [sys.executable, "-m", "orchestrator"]
    subprocess.run(
        [*orchestrator, "apply", "--auto-approve"],
        cwd=tmp_path,
        env=scheduled_env(tmp_path),
        check=True,
        capture_output=True,
    )
    with receiver() as inbox:
        env = scheduled_env(tmp_path, ORCHESTRATOR_NOTIFY=inbox.url)
        run = subprocess.run([str(DEPLOY / "scheduled.sh")], env=env, capture_output=True)
    assert run.returncode == 1  # the unwhitelisted master key
    assert inbox.titles() == ["orchestrator [example]: audit: 1 finding(s) at high or above"]


def test_scheduled_script_rotates_and_fails_on_high_findings(tmp_path: Path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    init_project(tmp_path)
    env = scheduled_env(tmp_path)
    orchestrator = [sys.executable, "-m", "orchestrator"]
    subprocess.run(
        [*orchestrator, "apply", "--auto-approve"],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
    )
    unwhitelisted = subprocess.run(
        [str(DEPLOY / "scheduled.sh")], env=env, capture_output=True, text=True
    )
    assert unwhitelisted.returncode == 1 and "master_no_whitelist" in unwhitelisted.stdout
    whitelist_sandbox_master(tmp_path)
    clean = subprocess.run([str(DEPLOY / "scheduled.sh")], env=env, capture_output=True, text=True)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "Nothing to rotate" in clean.stdout
    plan = tmp_path / "plans" / "example.yaml"
    plan.write_text(plan.read_text().replace("ips: [198.51.100.7]", "ips: [198.51.100.8]"))
    (tmp_path / "secrets" / "copy" / "CopyTrade-Bot.json").unlink()
    risky = subprocess.run([str(DEPLOY / "scheduled.sh")], env=env, capture_output=True, text=True)
    assert risky.returncode == 1
    assert "missing_secret" in risky.stdout


def test_the_bots_example_reloads_by_systemd_and_by_signal_and_validates():
    from orchestrator.config import load_plan

    keys = {k.label: k for k in load_plan(DEPLOY / "examples" / "bots.yaml").desired.keys()}
    assert keys["QuantBot-BTC"].reload[:2] == ("systemctl", "reload-or-restart")
    assert keys["QuantBot-BTC"].check
    assert keys["CopyBot"].reload[:2] == ("pkill", "-HUP")
    rules = (DEPLOY / "systemd" / "orchestrator-reload-bots.rules").read_text()
    assert 'subject.user == "orchestrator"' in rules and '"bot.service"' in rules


def test_write_paths_gives_the_systemd_unit_every_directory_the_plan_writes(tmp_path: Path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    init_project(tmp_path)
    outside = tmp_path.parent / f"{tmp_path.name}-elsewhere" / "bot.env"
    plan = tmp_path / "plans" / "example.yaml"
    text = plan.read_text().replace(
        "        ips: [198.51.100.7]\n",
        f"        ips: [198.51.100.7]\n        secrets: dotenv:{outside}\n",
    )
    assert str(outside) in text
    plan.write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "write-paths", "--systemd"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip()
    assert line.startswith("ReadWritePaths=")
    written = set(line.removeprefix("ReadWritePaths=").split())
    root = tmp_path.resolve()
    assert written == {str(root / "state"), str(root / "secrets"), str(outside.parent)}
    service = (DEPLOY / "systemd" / "orchestrator-rotate.service").read_text()
    assert "orchestrator write-paths --systemd" in service
