"""CI needs the PostgreSQL server the backend's tests run against: fail early, and say so,
when it cannot be reached (outside CI those tests are skipped instead)."""

from __future__ import annotations

import os
import sys

import psycopg

DSN = os.environ.get("ORCHESTRATOR_TEST_PG_DSN") or "postgresql://postgres@127.0.0.1:5432/test"


def main() -> int:
    try:
        with psycopg.connect(DSN, connect_timeout=5) as conn:
            version = conn.execute("SHOW server_version").fetchone()
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0]
        print(
            f"PostgreSQL is unreachable ({reason}). CI runs the postgres backend's tests"
            " against a server at 127.0.0.1:5432 (user postgres, database test, trust auth),"
            " or the one ORCHESTRATOR_TEST_PG_DSN names: start it before .ci/run.",
            file=sys.stderr,
        )
        return 1
    print(f"PostgreSQL {version[0] if version else '?'} reachable for the backend's tests.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
