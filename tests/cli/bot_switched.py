"""The `check:` step of the reload tests: wait until the bot acknowledges the generation the
orchestrator just made current (ORCHESTRATOR_GENERATION), or fail after a few seconds.

    python bot_switched.py ACK_FILE
"""

from __future__ import annotations

import json
import os
import sys
import time

WAIT_S = 10.0


def main(ack_file: str) -> int:
    wanted = os.environ["ORCHESTRATOR_GENERATION"]
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            with open(ack_file, encoding="utf-8") as source:
                if json.load(source)["generation"] == wanted:
                    print(f"bot uses generation {wanted}")
                    return 0
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.02)
    print(f"bot did not switch to generation {wanted}")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
