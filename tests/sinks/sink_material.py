from datetime import UTC, datetime

from pydantic import SecretStr

from orchestrator.sinks import KeyMaterial

CANARY = "CANARY-S3CRET-7c1d2e3f"
PEM = f"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI{CANARY}\n-----END PRIVATE KEY-----\n"


def make_material(
    generation: int = 1,
    key_type: str = "hmac",
    label: str = "Bot",
    api_key: str | None = "K" * 60 + "WXYZ",
) -> KeyMaterial:
    secret = (
        f"{CANARY}-g{generation}" if key_type == "hmac" else PEM.replace("EI", f"EI{generation}")
    )
    return KeyMaterial(
        subaccount="quant",
        label=label,
        api_key=api_key,
        key_type=key_type,
        secret=SecretStr(secret),
        created_at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        generation=generation,
    )
