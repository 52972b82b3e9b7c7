import json
import os
import subprocess
import sys
import textwrap

import pytest
from pydantic import SecretStr

from orchestrator.store import LocalFileBackend, SecretInRecordError

CANARY = "CANARY-S3CRET-9f8e7d"


@pytest.fixture
def journal(tmp_path):
    return LocalFileBackend(tmp_path).journal("main")


def test_intent_then_outcome_is_not_pending(journal):
    journal.intent("op1", {"op": "create", "address": "quant/Bot"})
    assert [e.op_id for e in journal.pending()] == ["op1"]
    journal.outcome("op1", {"apiKey": "abc"})
    assert journal.pending() == []
    kinds = [(e.kind, e.ok) for e in journal.entries()]
    assert kinds == [("intent", None), ("outcome", True)]
    assert oct(os.stat(journal.path).st_mode & 0o777) == "0o600"


def test_error_outcome_recorded(journal):
    journal.intent("op1", {"op": "delete"})
    journal.outcome("op1", error=TimeoutError("read timed out"))
    last = journal.entries()[-1]
    assert last.ok is False and last.error == {"type": "TimeoutError", "message": "read timed out"}


def test_pending_after_crash_between_intent_and_outcome(tmp_path):
    script = textwrap.dedent(
        f"""
        import os
        from orchestrator.store import LocalFileBackend
        journal = LocalFileBackend({str(tmp_path)!r}).journal("main")
        journal.intent("done", {{"op": "create", "address": "quant/A"}})
        journal.outcome("done", {{"apiKey": "k1"}})
        journal.intent("inflight", {{"op": "create", "address": "quant/B"}})
        os._exit(137)  # killed before the call returns: no outcome, no cleanup
        """
    )
    subprocess.run([sys.executable, "-c", script], check=False)
    pending = LocalFileBackend(tmp_path).journal("main").pending()
    assert [(e.op_id, e.action["address"]) for e in pending] == [("inflight", "quant/B")]


def test_torn_last_line_is_ignored_and_repaired(journal):
    journal.intent("op1", {"op": "create"})
    with open(journal.path, "ab") as handle:
        handle.write(b'{"kind":"intent","op":"op2","act')
    assert [e.op_id for e in journal.pending()] == ["op1"]
    journal.outcome("op1", {"ok": 1})
    assert journal.pending() == []
    assert all(json.loads(line) for line in journal.path.read_text().splitlines())


def test_damaged_line_in_the_middle_is_skipped_reported_and_kept_aside(journal):
    journal.intent("op1", {"op": "create"})
    with open(journal.path, "ab") as handle:
        handle.write(b"garbage " + CANARY.encode() + b"\n")
    journal.intent("op2", {"op": "create"})
    journal.outcome("op1", {"ok": 1})
    assert [e.op_id for e in journal.pending()] == ["op2"]
    assert journal.damaged_lines() == [2]
    report = journal.damage_report()
    assert "line 2" in report and CANARY not in report
    kept = journal.clear()
    assert kept is not None and kept.name.startswith(journal.path.name + ".damaged-")
    assert CANARY in kept.read_text() and not journal.path.exists()
    assert journal.pending() == [] and journal.damage_report() is None


@pytest.mark.parametrize(
    "line",
    [
        b'{"kind":"intent","op":"x","ts":"t","action":"not a dict"}',
        b'{"kind":"launch","op":"x","ts":"t"}',
        b'{"op":"x","ts":"t"}',
        b"[1, 2]",
        b"\x00\x00\x00",
    ],
)
def test_a_line_of_the_wrong_shape_is_damage_not_a_crash(journal, line):
    journal.intent("op1", {"op": "create"})
    with open(journal.path, "ab") as handle:
        handle.write(line + b"\n")
    journal.intent("op2", {"op": "create"})
    assert [e.op_id for e in journal.pending()] == ["op1", "op2"]
    assert journal.damaged_lines() == [2]


def test_torn_last_line_that_parses_as_json_is_still_torn(journal):
    journal.intent("op1", {"op": "create"})
    with open(journal.path, "ab") as handle:
        handle.write(b'{"op":"op2"}')
    assert [e.op_id for e in journal.pending()] == ["op1"]
    assert journal.damaged_lines() == []
    journal.outcome("op1", {"ok": 1})
    assert journal.pending() == [] and journal.damaged_lines() == []
    assert journal.clear() is None


def test_clear_forgets_everything(journal):
    journal.intent("op1", {"op": "create"})
    journal.clear()
    assert journal.entries() == [] and not journal.path.exists()
    journal.clear()
    journal.intent("op2", {"op": "create"})
    assert [e.op_id for e in journal.pending()] == ["op2"]


@pytest.mark.parametrize(
    "action",
    [
        {"secret": SecretStr(CANARY)},
        {"nested": [{"value": SecretStr(CANARY)}]},
        {"secretKey": CANARY},
        {"private_key": CANARY},
        {"raw": CANARY.encode()},
    ],
)
def test_secrets_and_non_plain_values_refused(journal, action):
    with pytest.raises(SecretInRecordError) as caught:
        journal.intent("op1", action)
    assert CANARY not in str(caught.value)
    assert not journal.path.exists() or CANARY not in journal.path.read_text()


def test_outcome_with_secret_refused(journal):
    journal.intent("op1", {"op": "create"})
    with pytest.raises(SecretInRecordError):
        journal.outcome("op1", {"apiKey": "k", "secretKey": CANARY})
    assert CANARY not in journal.path.read_text()
