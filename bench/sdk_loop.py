"""The baseline: what a user would write with Binance's official Python SDK
(binance-sdk-sub-account), one call after another, sleeping and retrying on a 429.

Run as a script so its imports and start-up count like ours:
    python bench/sdk_loop.py refresh|create URL TIME_SCALE [EMAIL...]
It prints one JSON line: {"calls": n, "rate_limited": n, "keys": n}.

The SDK sends every parameter in the query string, also for POST; Binance (and the emulator)
only accept `publicKey` in the body, so the creation loop makes HMAC (system-generated) keys.
The SDK reads Retry-After as whole seconds only; the emulator with --time-scale sends
fractions like "0.42", so when the SDK reports none the loop waits one (scaled) second, the
shortest Retry-After Binance sends.
"""

from __future__ import annotations

import json
import sys
import time

from binance_common.configuration import ConfigurationRestAPI
from binance_common.errors import TooManyRequestsError
from binance_sdk_sub_account import SubAccount
from emu import MASTER_KEY, MASTER_SECRET

KEY_IPS = "203.0.113.10"
counts = {"calls": 0, "rate_limited": 0}


def call(fn, time_scale: float, **kwargs):
    while True:
        counts["calls"] += 1
        try:
            return fn(**kwargs).data()
        except TooManyRequestsError as exc:
            counts["rate_limited"] += 1
            wait = exc.retry_after if exc.retry_after is not None else 1.0 / time_scale
            time.sleep(wait)


def refresh(api, time_scale: float) -> int:
    subs, page = [], 1
    while True:
        result = call(api.query_sub_account_list, time_scale, page=page, limit=200)
        subs += result.sub_accounts or []
        if len(result.sub_accounts or []) < 200:
            break
        page += 1
    keys = 0
    for sub in subs:
        listed = call(api.query_sub_account_api_key, time_scale, email=sub.email)
        for row in _rows(listed):
            call(
                api.get_ip_restriction_for_a_sub_account_api_key,
                time_scale,
                email=sub.email,
                sub_account_api_key=row["apikey"],
            )
            keys += 1
    return keys


def _rows(listed) -> list[dict]:
    data = listed.to_dict() if hasattr(listed, "to_dict") else listed
    return data.get("rows") or data.get("list") or []


def create(api, time_scale: float, emails: list[str], per_sub: int) -> int:
    made = 0
    for email in emails:
        for j in range(per_sub):
            call(
                api.create_sub_account_api_key,
                time_scale,
                email=email,
                api_name=f"sdk-Bot{j:02d}",
                status=2,
                can_trade=j == 0,
                can_futures_trade=j == 0,
                ip_address=KEY_IPS,
            )
            made += 1
    return made


def main() -> None:
    mode, url, time_scale = sys.argv[1], sys.argv[2], float(sys.argv[3])
    config = ConfigurationRestAPI(api_key=MASTER_KEY, api_secret=MASTER_SECRET, base_path=url)
    api = SubAccount(config_rest_api=config).rest_api
    if mode == "refresh":
        keys = refresh(api, time_scale)
    else:
        keys = create(api, time_scale, sys.argv[5:], int(sys.argv[4]))
    print(json.dumps({**counts, "keys": keys}))


if __name__ == "__main__":
    main()
