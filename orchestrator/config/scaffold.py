"""`orchestrator init`: a project a new user can validate, plan and apply against the sandbox."""

from __future__ import annotations

from pathlib import Path

EXAMPLE_PLAN = """\
# An example plan: run `orchestrator validate`, then `orchestrator plan`.
# It uses the built-in sandbox, so nothing here touches a real Binance account.
version: 1
project: example                     # owns these keys (in their apiNames); one id per plan
exchange:
  kind: sandbox                      # sandbox | binance (credentials come from the environment)
defaults:
  key_type: ed25519                  # the private key never leaves this machine
  rotate_after: 30d
  grace: 1h                          # the previous key lives this long after a rotation
  secrets: file:secrets/             # where new key material is written (git-ignored)
  ips: [203.0.113.10]                # your bots' public IPv4 address(es)
subaccounts:
  - name: quant
    email: quant@example.com         # an existing sub-account
    keys:
      - label: QuantBot-BTC
        profile: quant               # read + spot + futures
      - label: Koinly-Tax
        profile: read-only
        ips: []                      # read-only keys may go without a whitelist
  - name: copy
    virtual: copytrade               # a virtual sub-account the orchestrator creates
    keys:
      - label: CopyTrade-Bot
        profile: copy-trade          # read + spot
        ips: [198.51.100.7]
"""

GITIGNORE_ENTRIES = ("state/", "secrets/")


def init_project(directory: Path) -> list[tuple[Path, str]]:
    """Create what is missing; never overwrite. Returns (path, "created"|"kept"|"updated")."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return [
        _ensure_dir(directory / "plans", 0o755),
        _ensure_file(directory / "plans" / "example.yaml", EXAMPLE_PLAN),
        _ensure_dir(directory / "state", 0o700),
        _ensure_dir(directory / "secrets", 0o700),
        _ensure_gitignore(directory / ".gitignore"),
    ]


def _ensure_dir(path: Path, mode: int) -> tuple[Path, str]:
    if path.is_dir():
        return path, "kept"
    path.mkdir(mode=mode)
    path.chmod(mode)
    return path, "created"


def _ensure_file(path: Path, text: str) -> tuple[Path, str]:
    if path.exists():
        return path, "kept"
    path.write_text(text, encoding="utf-8")
    return path, "created"


def _ensure_gitignore(path: Path) -> tuple[Path, str]:
    """An existing .gitignore is kept, with the entries that keep secrets out of git added."""
    if not path.exists():
        path.write_text("".join(f"{entry}\n" for entry in GITIGNORE_ENTRIES), encoding="utf-8")
        return path, "created"
    text = path.read_text(encoding="utf-8")
    present = {line.strip() for line in text.splitlines()}
    missing = [e for e in GITIGNORE_ENTRIES if e not in present and e.rstrip("/") not in present]
    if not missing:
        return path, "kept"
    prefix = "" if text.endswith("\n") or not text else "\n"
    path.write_text(text + prefix + "".join(f"{e}\n" for e in missing), encoding="utf-8")
    return path, "updated"
