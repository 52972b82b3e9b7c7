"""One run of the storage steps of a rotation with a canary secret, then search everything."""

import pytest
from sink_material import CANARY, make_material

from orchestrator.sinks import Sink, open_sink
from orchestrator.store import (
    LocalFileBackend,
    SecretInRecordError,
    StateBackend,
    new_state,
    next_serial,
)


@pytest.mark.parametrize("spec", ["file:secrets/", "dotenv:bots/bot.env"])
def test_canary_only_in_the_sink(tmp_path, spec, capsys):
    backend: StateBackend = LocalFileBackend(tmp_path)
    sink = open_sink(spec, tmp_path)
    assert isinstance(sink, Sink)
    journal, audit = backend.journal("main"), backend.audit("rotate")
    material = make_material(2, key_type="ed25519")

    with backend.lock("main", "rotate --due"):
        journal.intent("op1", {"op": "rotate", "address": material.address, "generation": 2})
        ref = sink.write_pending(material)
        journal.outcome("op1", {"sink_ref": ref, "apiKey": material.api_key})
        sink.promote(material.address)
        audit.append(
            "rotate",
            subaccount="quant",
            label="Bot",
            api_key=material.api_key,
            detail={"generation": 2, "material": str(material)},
        )
        with pytest.raises(SecretInRecordError) as caught:
            audit.append("rotate", detail={"material": material})
        backend.save_state(next_serial(new_state("main")))

    leaks = [p for p in (tmp_path / "state").iterdir() if CANARY in p.read_text()]
    assert leaks == []
    assert CANARY not in str(caught.value) and CANARY not in repr(material)
    assert CANARY not in capsys.readouterr().out
    assert backend.verify_audit().ok
    assert sink.read_current(material.address).secret.get_secret_value().count(CANARY) == 1
