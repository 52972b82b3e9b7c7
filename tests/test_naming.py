from orchestrator.domain.naming import (
    MAX_API_NAME,
    MAX_LABEL,
    MAX_PROJECT,
    KeyName,
    api_name,
    parse_api_name,
    parse_key_name,
    project_id_from,
)


def test_api_name_round_trips_label_and_generation():
    assert api_name("QuantBot-BTC", 3) == "orc-QuantBot-BTC-g3"
    assert parse_api_name("orc-QuantBot-BTC-g3") == ("QuantBot-BTC", 3)


def test_api_name_carries_the_owning_project():
    name = api_name("QuantBot-BTC", 3, "quant1")
    assert name == "orc-quant1.QuantBot-BTC-g3"
    assert parse_key_name(name) == KeyName("QuantBot-BTC", 3, "quant1")
    assert parse_key_name("orc-QuantBot-BTC-g3") == KeyName("QuantBot-BTC", 3, None)


def test_a_label_that_looks_like_a_project_is_still_a_label():
    """Labels have no dots, so `orc-koinly-tax-g1` is label koinly-tax of no project."""
    assert parse_key_name("orc-koinly-tax-g1") == KeyName("koinly-tax", 1, None)


def test_label_with_generation_like_suffix_parses_greedily():
    assert parse_api_name(api_name("bot-g2", 7)) == ("bot-g2", 7)


def test_foreign_names_are_not_ours():
    for name in ["mystery-key", "orc-", "orc-x-g", "QuantBot-g3", "orc-x-gabc", "orc-A.b-g1"]:
        assert parse_api_name(name) is None


def test_longest_label_fits_with_largest_generation_and_project():
    assert len(api_name("a" * MAX_LABEL, 999_999, "p" * MAX_PROJECT)) == MAX_API_NAME


def test_project_id_from_a_file_name():
    assert project_id_from("example") == "example"
    assert project_id_from("My-Plan_2") == "myplan2"
    assert project_id_from("--") == "default"
    assert len(project_id_from("a" * 40)) == MAX_PROJECT
