import json
import os

import pytest
from pydantic import SecretStr

from orchestrator.store import (
    AuditLog,
    LocalFileBackend,
    SecretInRecordError,
    mask_key,
    verify,
)
from orchestrator.store.audit import GENESIS, line_hash

API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
CANARY = "CANARY-S3CRET-9f8e7d"


@pytest.fixture
def log(tmp_path):
    backend = LocalFileBackend(tmp_path)
    audit = backend.audit("apply")
    for number in range(1, 6):
        audit.append(
            "create",
            subaccount="quant",
            label=f"Bot{number}",
            api_key=API_KEY,
            detail={"generation": number},
        )
    return audit


def _lines(audit: AuditLog) -> list[str]:
    return audit.path.read_text().splitlines()


def _write(audit: AuditLog, lines: list[str]) -> None:
    audit.path.write_text("".join(line + "\n" for line in lines))


def test_mask_key():
    assert mask_key(API_KEY) == "vmPU…Eh8A"
    assert mask_key(None) is None and mask_key("short") == "…"


def test_lines_carry_the_fields_and_chain(log):
    events = [json.loads(line) for line in _lines(log)]
    assert events[0]["prev"] == GENESIS
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5]
    for before, after in zip(events, events[1:], strict=False):
        assert after["prev"] == before["hash"]
    first = events[0]
    assert first["key"] == "vmPU…Eh8A" and first["command"] == "apply"
    assert first["who"] and first["host"] and first["ts"] and first["outcome"] == "ok"
    assert first["hash"] == line_hash(first)
    assert API_KEY not in log.path.read_text()
    assert oct(os.stat(log.path).st_mode & 0o777) == "0o600"


def test_intact_log_verifies(log):
    result = verify(log.path)
    assert result.ok and result.lines == 5 and result.first_bad_line is None


def test_empty_or_missing_log_verifies(tmp_path):
    assert verify(tmp_path / "audit.jsonl").ok


def _edit(lines):
    event = json.loads(lines[2])
    event["outcome"] = "error"
    lines[2] = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return lines, 3, "modified"


def _edit_and_rehash(lines):
    event = json.loads(lines[2])
    event["label"] = "Evil"
    event["hash"] = line_hash(event)
    lines[2] = json.dumps(event)
    return lines, 4, "does not follow"


def _delete(lines):
    del lines[1]
    return lines, 2, "does not follow"


def _insert_copy(lines):
    lines.insert(3, lines[0])
    return lines, 4, "does not follow"


def _reorder(lines):
    lines[1], lines[2] = lines[2], lines[1]
    return lines, 2, "does not follow"


def _truncate_middle(lines):
    lines[2] = lines[2][:40]
    return lines, 3, "not valid JSON"


def _malformed(lines):
    lines.insert(2, "not json at all")
    return lines, 3, "not valid JSON"


def _missing_field(lines):
    event = json.loads(lines[1])
    del event["detail"]
    event["hash"] = line_hash(event)
    lines[1] = json.dumps(event)
    return lines, 2, "audit fields"


def _renumber(lines):
    event = json.loads(lines[0])
    event["seq"] = 7
    event["hash"] = line_hash(event)
    lines[0] = json.dumps(event)
    return lines, 1, "sequence number"


@pytest.mark.parametrize(
    "tamper",
    [
        _edit,
        _edit_and_rehash,
        _delete,
        _insert_copy,
        _reorder,
        _truncate_middle,
        _malformed,
        _missing_field,
        _renumber,
    ],
)
def test_tampering_names_the_line(log, tamper):
    lines, bad_line, reason = tamper(_lines(log))
    _write(log, lines)
    result = verify(log.path)
    assert not result.ok
    assert result.first_bad_line == bad_line
    assert reason in result.reason and f"line {bad_line}" in result.reason


def test_torn_tail_reported_then_repaired_by_next_append(log):
    with open(log.path, "ab") as handle:
        handle.write(b'{"seq":6,"ts":"20')
    result = verify(log.path)
    assert not result.ok and result.first_bad_line == 6 and "incomplete" in result.reason
    log.append("delete", subaccount="quant", label="Bot1")
    assert verify(log.path).ok and verify(log.path).lines == 6


def test_two_writers_share_the_chain(tmp_path):
    backend = LocalFileBackend(tmp_path)
    first, second = backend.audit("apply"), backend.audit("rotate")
    for _ in range(3):
        first.append("create")
        second.append("rotate")
    result = backend.verify_audit()
    assert result.ok and result.lines == 6


def test_secret_detail_refused(log):
    with pytest.raises(SecretInRecordError) as caught:
        log.append("create", detail={"secret": SecretStr(CANARY)})
    assert CANARY not in str(caught.value)
    with pytest.raises(SecretInRecordError):
        log.append("create", detail={"apiSecret": CANARY})
    assert CANARY not in log.path.read_text()
    assert verify(log.path).ok
