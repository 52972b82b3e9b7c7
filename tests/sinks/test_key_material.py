from dataclasses import FrozenInstanceError, replace

import pytest
from pydantic import SecretStr, ValidationError
from sink_material import CANARY, make_material

from orchestrator.sinks import KeyMaterial, SinkConfigError, UnsafeSinkPath, open_sink


def test_secret_hidden_in_repr_and_str():
    for key_type in ("hmac", "ed25519"):
        material = make_material(key_type=key_type)
        assert CANARY not in repr(material) and CANARY not in str(material)
        assert CANARY not in f"{material!r} {material}"
        assert material.address == "quant/Bot"


def test_material_is_frozen_and_replaceable():
    material = make_material(key_type="ed25519", api_key="")
    assert material.api_key is None
    with pytest.raises(FrozenInstanceError):
        material.generation = 2
    registered = replace(material, api_key="PUB")
    assert registered.api_key == "PUB" and registered.secret == material.secret
    assert isinstance(replace(material, secret=CANARY).secret, SecretStr)


def test_address_accepted_when_consistent():
    data = {
        k: getattr(make_material(), k)
        for k in (
            "subaccount",
            "label",
            "api_key",
            "key_type",
            "secret",
            "created_at",
            "generation",
        )
    }
    assert KeyMaterial(address="quant/Bot", **data).address == "quant/Bot"
    with pytest.raises(ValidationError) as caught:
        KeyMaterial(address="other/Bot", **data)
    assert CANARY not in str(caught.value)
    with pytest.raises(ValidationError) as caught:
        KeyMaterial(**{**data, "key_type": "rsa"})
    assert CANARY not in str(caught.value)


@pytest.mark.parametrize("label", ["../x", "a/b", ".hidden", ""])
def test_path_like_names_refused(label):
    with pytest.raises(ValidationError):
        make_material(label=label)


@pytest.mark.parametrize("spec", ["secrets/", "ftp:x", "file:", "dotenv:bots/"])
def test_bad_specs(spec, tmp_path):
    with pytest.raises(SinkConfigError):
        open_sink(spec, tmp_path)


def test_relative_escape_refused_absolute_allowed(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    with pytest.raises(UnsafeSinkPath, match="leaves the project"):
        open_sink("file:../elsewhere", project)
    with pytest.raises(UnsafeSinkPath):
        open_sink("dotenv:a/../../x.env", project)
    sink = open_sink(f"file:{tmp_path / 'elsewhere'}", project)
    sink.write_pending(make_material())
    sink.promote("quant/Bot")
    assert sink.exists("quant/Bot")
