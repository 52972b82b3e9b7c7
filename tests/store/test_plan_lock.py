import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from orchestrator.store import LocalFileBackend, LockHeld, LockNotHeld, PlanLock


@pytest.fixture
def backend(tmp_path):
    return LocalFileBackend(tmp_path)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


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


def test_dead_holder_is_stale_and_breakable(backend):
    path = backend.lock_path("main")
    _plant(path, pid=_dead_pid())
    lock = backend.lock("main", "apply")
    assert lock.is_stale()
    with pytest.raises(LockHeld, match="stale") as caught:
        lock.acquire()
    assert caught.value.stale
    info = lock.acquire(force_break_stale=True)
    assert json.loads(path.read_text())["token"] == info.token
    lock.release()


def test_live_holder_is_not_broken(backend):
    _plant(backend.lock_path("main"), pid=os.getppid())
    lock = backend.lock("main", "apply")
    assert not lock.is_stale()
    with pytest.raises(LockHeld):
        lock.acquire(force_break_stale=True)
    assert json.loads(backend.lock_path("main").read_text())["token"] == "t0"


def test_holder_on_another_host_is_never_stale(backend):
    _plant(backend.lock_path("main"), host="elsewhere.example", pid=_dead_pid())
    assert not backend.lock("main", "apply").is_stale()


def test_reused_pid_is_stale(backend):
    _plant(backend.lock_path("main"), pid=os.getpid(), pid_started="1")
    assert backend.lock("main", "apply").is_stale() == os.path.exists("/proc/self/stat")


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


def test_unreadable_old_lock_is_stale(backend):
    path = backend.lock_path("main")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    os.utime(path, (1, 1))
    assert backend.lock("main", "apply").is_stale()


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
