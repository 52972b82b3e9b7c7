import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.store import LocalFileBackend, LockHeld, LockNotHeld, PlanLock


@pytest.fixture
def backend(tmp_path):
    return LocalFileBackend(tmp_path)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def _takeovers(backend) -> list[dict]:
    if not backend.audit_path.exists():
        return []
    events = [json.loads(line) for line in backend.audit_path.read_text().splitlines()]
    return [e for e in events if e["action"] == "lock_takeover"]


def _plant(path, **overrides):
    info = {
        "holder": "alice",
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "command": "apply",
        "started_at": "2024-05-01T10:00:00+00:00",
        "token": "t0",
        "pid_started": None,
    }
    info.update(overrides)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info))


def test_lock_file_names_the_holder(backend):
    with backend.lock("main", "apply plans/main.yaml") as lock:
        info = json.loads(backend.lock_path("main").read_text())
        assert info["pid"] == os.getpid() and info["command"] == "apply plans/main.yaml"
        assert info["host"] == socket.gethostname() and info["holder"] and info["started_at"]
        assert oct(os.stat(backend.lock_path("main")).st_mode & 0o777) == "0o600"
        assert lock.held
    assert not backend.lock_path("main").exists()


def test_second_acquire_names_holder_host_pid_command_time(backend):
    with backend.lock("main", "apply"):
        with pytest.raises(LockHeld) as caught:
            backend.lock("main", "rotate --due").acquire()
    message = str(caught.value)
    for part in (socket.gethostname(), str(os.getpid()), "'apply'", "since 20"):
        assert part in message
    assert not caught.value.stale


def test_released_on_exception(backend):
    with pytest.raises(RuntimeError), backend.lock("main", "apply"):
        raise RuntimeError("boom")
    assert not backend.lock_path("main").exists()


def test_locks_are_per_plan(backend):
    with backend.lock("a", "apply"), backend.lock("b", "apply"):
        pass


def test_release_without_holding(backend):
    with pytest.raises(LockNotHeld):
        backend.lock("main", "apply").release()


def test_dead_holder_is_taken_over_without_a_flag_and_logged(backend):
    path = backend.lock_path("main")
    dead = _dead_pid()
    _plant(path, pid=dead)
    lock = backend.lock("main", "apply")
    assert lock.is_stale()
    info = lock.acquire()
    assert json.loads(path.read_text())["token"] == info.token
    lock.release()
    (takeover,) = _takeovers(backend)
    assert f"pid {dead}" in takeover["detail"]["previous_holder"]
    assert takeover["detail"]["reason"] == "its process is gone"


def test_holder_killed_with_sigkill_is_taken_over(backend, tmp_path):
    script = textwrap.dedent(
        f"""
        import time
        from orchestrator.store import LocalFileBackend
        lock = LocalFileBackend({str(tmp_path)!r}).lock("main", "rotate --due")
        lock.acquire()
        print("held", flush=True)
        time.sleep(60)
        """
    )
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LockHeld, match="rotate --due"):
            backend.lock("main", "apply").acquire()
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
    finally:
        holder.kill()
        holder.wait()
    with backend.lock("main", "apply") as lock:
        assert lock.held
    (takeover,) = _takeovers(backend)
    assert f"pid {holder.pid}" in takeover["detail"]["previous_holder"]
    assert "rotate --due" in takeover["detail"]["previous_holder"]
    assert backend.verify_audit().ok


def test_live_holder_is_not_broken(backend):
    _plant(backend.lock_path("main"), pid=os.getppid())
    lock = backend.lock("main", "apply")
    assert not lock.is_stale()
    with pytest.raises(LockHeld):
        lock.acquire(force_break_stale=True)
    assert json.loads(backend.lock_path("main").read_text())["token"] == "t0"


def test_holder_on_another_host_within_its_lease_is_refused_naming_it(backend):
    _plant(
        backend.lock_path("main"), host="elsewhere.example", pid=_dead_pid(), lease_expires=_in(60)
    )
    lock = backend.lock("main", "apply")
    assert not lock.is_stale()
    with pytest.raises(LockHeld) as caught:
        lock.acquire()
    message = str(caught.value)
    for part in ("elsewhere.example", "'apply'", "since 2024-05-01", "lease", "--break-stale-lock"):
        assert part in message
    assert _takeovers(backend) == []


def test_holder_on_another_host_is_broken_only_when_asked(backend):
    _plant(backend.lock_path("main"), host="elsewhere.example", lease_expires=_in(60))
    lock = backend.lock("main", "apply")
    info = lock.acquire(force_break_stale=True)
    assert json.loads(backend.lock_path("main").read_text())["token"] == info.token
    lock.release()
    (takeover,) = _takeovers(backend)
    assert "--break-stale-lock" in takeover["detail"]["reason"]


def test_holder_on_another_host_with_an_expired_lease_is_taken_over(backend):
    _plant(backend.lock_path("main"), host="elsewhere.example", lease_expires=_in(-1))
    lock = backend.lock("main", "apply")
    assert lock.is_stale()
    lock.acquire()
    lock.release()
    (takeover,) = _takeovers(backend)
    assert "elsewhere.example" in takeover["detail"]["previous_holder"]
    assert "lease" in takeover["detail"]["reason"]


def test_holder_heartbeat_keeps_the_lease_fresh(tmp_path):
    lock = PlanLock(tmp_path / "x.lock", "apply", lease_seconds=0.6)
    with lock:
        first = json.loads((tmp_path / "x.lock").read_text())["lease_expires"]
        time.sleep(1.0)
        info = json.loads((tmp_path / "x.lock").read_text())
        assert info["lease_expires"] > first
        assert datetime.fromisoformat(info["lease_expires"]) > datetime.now(UTC)
    assert not (tmp_path / "x.lock").exists()
    assert not any(t.name.endswith(" x.lock") for t in threading.enumerate())


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs /proc")
def test_reused_pid_is_stale_and_taken_over(backend):
    _plant(backend.lock_path("main"), pid=os.getpid(), pid_started="1")
    lock = backend.lock("main", "apply")
    assert lock.is_stale()
    lock.acquire()
    lock.release()
    assert len(_takeovers(backend)) == 1


def test_release_leaves_someone_elses_lock(backend):
    lock = backend.lock("main", "apply")
    lock.acquire()
    _plant(backend.lock_path("main"), token="other")
    lock.release()
    assert backend.lock_path("main").exists()


def test_unreadable_fresh_lock_is_held_not_stale(backend):
    backend.lock_path("main").parent.mkdir(parents=True, exist_ok=True)
    backend.lock_path("main").write_text("")
    with pytest.raises(LockHeld, match="unknown process"):
        backend.lock("main", "apply").acquire(force_break_stale=True)


def test_unreadable_old_lock_is_stale_and_taken_over(backend):
    path = backend.lock_path("main")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    os.utime(path, (1, 1))
    lock = backend.lock("main", "apply")
    assert lock.is_stale()
    lock.acquire()
    lock.release()
    (takeover,) = _takeovers(backend)
    assert "unreadable" in takeover["detail"]["previous_holder"]


def test_two_processes_race_and_one_wins(tmp_path):
    script = textwrap.dedent(
        f"""
        import sys, time
        from orchestrator.store import LocalFileBackend, LockHeld
        backend = LocalFileBackend({str(tmp_path)!r})
        while time.time() < float(sys.argv[1]):
            pass
        try:
            with backend.lock("main", "apply"):
                print("won", flush=True)
                time.sleep(1.0)
        except LockHeld as exc:
            print("lost", exc, flush=True)
        """
    )
    start = __import__("time").time() + 0.8
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(start)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = sorted(p.communicate(timeout=30)[0] for p in procs)
    assert outputs[0].startswith("lost") and "pid" in outputs[0]
    assert outputs[1].startswith("won")


def test_plan_lock_usable_directly(tmp_path):
    lock = PlanLock(tmp_path / "x.lock", "apply", force_break_stale=True)
    with lock:
        assert (tmp_path / "x.lock").exists()
