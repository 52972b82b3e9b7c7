"""The audit log's head is anchored in every state save, so `log verify` notices a log that
was cut short or rewritten with freshly computed hashes, which the hash chain alone cannot."""

import json

import pytest
from typer.testing import CliRunner

from orchestrator.store import LocalFileBackend, new_state, next_serial
from orchestrator.store.audit import line_hash


@pytest.fixture
def backend(tmp_path):
    return LocalFileBackend(tmp_path)


def _append(backend, count: int, command: str = "apply") -> None:
    audit = backend.audit(command)
    for number in range(count):
        audit.append("create", subaccount="quant", label=f"Bot{number}")


def _save(backend, plan: str = "main"):
    state = backend.load_state(plan) or new_state(plan)
    return backend.save_state(next_serial(state))


def _events(backend) -> list[dict]:
    return [json.loads(line) for line in backend.audit_path.read_text().splitlines()]


def _rewrite(backend, events: list[dict]) -> None:
    """Write `events` back as a valid chain: every hash recomputed, as a forger would."""
    prev = "0" * 64
    lines = []
    for seq, event in enumerate(events, start=1):
        event = {**event, "seq": seq, "prev": prev}
        event["hash"] = line_hash(event)
        prev = event["hash"]
        lines.append(json.dumps(event))
    backend.audit_path.write_text("".join(line + "\n" for line in lines))


def test_each_save_records_the_head_of_the_audit_log(backend):
    _append(backend, 3)
    saved = _save(backend)
    head = _events(backend)[-1]
    assert (saved.audit_head.seq, saved.audit_head.hash) == (3, head["hash"])
    assert backend.load_state("main").audit_head == saved.audit_head


def test_cutting_entries_off_the_end_is_detected(backend):
    _append(backend, 5)
    _save(backend)
    _rewrite(backend, _events(backend)[:3])
    result = backend.verify_audit()
    assert not result.ok
    assert "main.state.json" in result.reason and "5" in result.reason
    assert "cut off" in result.reason


def test_rewriting_with_recomputed_hashes_is_detected(backend):
    _append(backend, 5)
    _save(backend)
    events = _events(backend)
    events[1]["outcome"] = "failed"
    _rewrite(backend, events)
    result = backend.verify_audit()
    assert not result.ok
    assert "main.state.json" in result.reason and "rewritten" in result.reason


def test_entries_after_the_last_anchor_are_only_chain_checked(backend):
    _append(backend, 2)
    _save(backend)
    _append(backend, 3)
    result = backend.verify_audit()
    assert result.ok and result.anchored_seq == 2
    report = result.report("state/audit.jsonl")
    assert "main.state.json" in report and "3 to 5" in report and "only" in report


def test_every_plan_anchors_the_shared_log(backend):
    _append(backend, 2)
    _save(backend, "alpha")
    _append(backend, 2, command="rotate")
    _save(backend, "beta")
    _rewrite(backend, _events(backend)[:3])
    result = backend.verify_audit()
    assert not result.ok and "beta.state.json" in result.reason
    _rewrite(backend, _events(backend)[:1])
    assert "alpha.state.json" in backend.verify_audit().reason


def test_a_save_after_truncation_keeps_the_evidence(backend):
    _append(backend, 5)
    _save(backend)
    _rewrite(backend, _events(backend)[:2])
    _append(backend, 4)
    _save(backend)
    assert not backend.verify_audit().ok


def test_a_log_without_anchors_says_so(backend):
    _append(backend, 2)
    result = backend.verify_audit()
    assert result.ok and result.anchored_seq is None
    assert "no state anchors" in result.report("state/audit.jsonl").lower()


def test_log_verify_names_the_anchoring_state_file(project):
    from orchestrator.cli import app

    runner = CliRunner()
    assert runner.invoke(app, ["apply", "--auto-approve"]).exit_code == 0
    intact = runner.invoke(app, ["log", "verify"])
    assert intact.exit_code == 0 and "example.state.json" in intact.output
    assert "only checked by the hash chain" not in intact.output  # a run ends with a save
    audit = project / "state" / "audit.jsonl"
    lines = audit.read_text().splitlines()
    audit.write_text(lines[0] + "\n")
    cut = runner.invoke(app, ["log", "verify"])
    assert cut.exit_code == 1 and "example.state.json" in cut.output and "cut off" in cut.output
