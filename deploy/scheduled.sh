#!/usr/bin/env bash
# What every schedule below runs: rotate what is due, then fail loudly on a risky account.
#   ORCHESTRATOR_PROJECT  the project folder (plans/, state/, secrets/); state lives in state/
#   BINANCE_API_KEY + BINANCE_API_SECRET, or BINANCE_API_KEY + BINANCE_PRIVATE_KEY_FILE
#                         the master credentials, from the scheduler's secret store
#   ORCHESTRATOR_NOTIFY   optional: comma-separated apprise URLs (they may hold tokens, so
#                         keep them with the credentials) that hear of a failed rotation and
#                         of audit findings, besides the plan's own `notify:` targets
#   ORCHESTRATOR_NOTIFY_LEVEL  optional: low | medium | high (default) | critical
# Exit 1 when a rotation failed or the audit found anything high or critical.
set -euo pipefail
cd "${ORCHESTRATOR_PROJECT:?set ORCHESTRATOR_PROJECT to the project folder}"
orchestrator rotate --due --auto-approve
orchestrator audit --fail-on high
