"""No secret, signature or full API key in logs, reprs or exception messages."""

from __future__ import annotations

import io
import json

import httpx
import pytest
import structlog
from pydantic import SecretStr
from structlog.testing import capture_logs

from orchestrator.exchange import errors
from orchestrator.exchange.logging import REDACTED, mask_key, redact_secrets
from orchestrator.exchange.models import Permission

EMAIL = "quant@example.com"
SUB_KEY = "SubKey0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTU"
SUB_SECRET = "CANARY-sub-secret-returned-once-0123456789abcdefghijklmnopqrstu"
PEM = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----"


def test_mask_key():
    assert mask_key("abcdefghijklmnopqrstuvwxyz") == "abcd…wxyz"
    assert mask_key("short") == "…rt" and mask_key("") == ""


def test_redact_secrets_masks_secret_fields_recursively():
    event = {
        "event": "x",
        "signature": "deadbeef",
        "secretKey": "s1",
        "api_secret": "s2",
        "private_key": PEM,
        "apiKey": SUB_KEY,
        "X-MBX-APIKEY": SUB_KEY,
        "token": SecretStr("s3"),
        "nested": {"secret": "s4", "list": [SecretStr("s5"), {"passphrase": "s6"}]},
        "url": "/sapi/v1/x?email=a&signature=abcdef0123",
        "text": f"key follows {PEM} end",
        "count": 3,
    }
    out = redact_secrets(None, "info", event)
    dumped = json.dumps(out, ensure_ascii=False)
    for secret in ('"deadbeef"', '"s1"', '"s2"', '"s3"', '"s4"', '"s5"', '"s6"', "abcdef0123"):
        assert secret not in dumped
    assert "MC4CAQ" not in dumped
    assert SUB_KEY not in dumped and mask_key(SUB_KEY) in dumped
    assert out["signature"] == REDACTED and out["count"] == 3
    assert out["url"] == f"/sapi/v1/x?email=a&signature={REDACTED}"


@pytest.fixture
def rendered_logs():
    """structlog configured like production (redact_secrets, JSON) into a buffer."""
    buffer = io.StringIO()
    structlog.configure(
        processors=[redact_secrets, structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(buffer),
        cache_logger_on_first_use=False,
    )
    try:
        yield buffer
    finally:
        structlog.reset_defaults()


async def _exercise(mock, client) -> tuple[list[str], list[BaseException]]:
    """Run a flow that returns a secret and hits every error path; collect signatures sent
    and exceptions raised."""
    signatures: list[str] = []

    def responder(*responses: httpx.Response | Exception):
        queue = list(responses)

        def answer(request: httpx.Request) -> httpx.Response:
            sent = request.url.query.decode() or request.content.decode()
            signatures.append(sent.rpartition("&signature=")[2])
            item = queue.pop(0) if len(queue) > 1 else queue[0]
            if isinstance(item, Exception):
                raise item
            return item

        return answer

    created = {"apiName": "a", "apiKey": SUB_KEY, "secretKey": SUB_SECRET, "status": 1}
    mock.post("/sapi/v1/sub-account/subAccountApi").mock(
        side_effect=responder(
            httpx.Response(200, json=created),
            httpx.Response(500, text=f"oops {SUB_SECRET}"),
            httpx.ReadTimeout("timed out"),
        )
    )
    mock.get("/sapi/v1/sub-account/subAccountApi/ipRestriction").mock(
        side_effect=responder(
            httpx.Response(401, json={"code": -2015, "msg": "Invalid API-key, IP, or perms"}),
            httpx.Response(
                400, json={"code": -1022, "msg": "Signature for this request is not valid."}
            ),
        )
    )
    raised: list[BaseException] = []
    key = await client.create_api_key(EMAIL, "a", frozenset({Permission.SPOT}), [])
    assert key.secret.get_secret_value() == SUB_SECRET
    raised.append(key)  # its repr must hide the secret too
    for _ in range(2):
        with pytest.raises(errors.AmbiguousOutcome) as caught:
            await client.create_api_key(EMAIL, "a", frozenset(), [])
        raised.append(caught.value)
    for kind in (errors.Unauthorized, errors.InvalidSignature):
        with pytest.raises(kind) as caught:
            await client.get_ip_restriction(EMAIL, SUB_KEY)
        raised.append(caught.value)
    return signatures, raised


def _assert_clean(text: str, signatures: list[str], helpers) -> None:
    for canary in (helpers.CANARY_SECRET, SUB_SECRET, helpers.MASTER_KEY, *signatures):
        assert canary not in text


async def test_canary_never_in_captured_log_events(mock, make_client, helpers):
    client = make_client()
    with capture_logs() as events:
        signatures, raised = await _exercise(mock, client)
    assert len(signatures) == 5 and all(signatures)
    calls = [e for e in events if e["event"] == "exchange.call"]
    assert len(calls) == 5
    assert set(calls[0]) >= {"endpoint", "method", "weight", "status", "duration_ms", "attempt"}
    _assert_clean(repr(events), signatures, helpers)
    assert "timestamp=" not in repr(events) and "email" not in repr(calls)
    for item in raised:
        _assert_clean(str(item) + repr(item), signatures, helpers)
    _assert_clean(repr(client), signatures, helpers)


async def test_canary_never_in_rendered_logs(mock, make_client, helpers, rendered_logs):
    signatures, _ = await _exercise(mock, make_client())
    output = rendered_logs.getvalue()
    assert output.count('"exchange.call"') == 5
    _assert_clean(output, signatures, helpers)


async def test_ambiguous_error_has_no_cause_chain_with_the_request(mock, make_client):
    mock.post("/sapi/v1/sub-account/subAccountApi").mock(side_effect=httpx.ReadTimeout("t"))
    with pytest.raises(errors.AmbiguousOutcome) as caught:
        await make_client().create_api_key(EMAIL, "a", frozenset(), [])
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
