from orchestrator.domain.naming import MAX_API_NAME, MAX_LABEL, api_name, parse_api_name


def test_api_name_round_trips_label_and_generation():
    assert api_name("QuantBot-BTC", 3) == "orc-QuantBot-BTC-g3"
    assert parse_api_name("orc-QuantBot-BTC-g3") == ("QuantBot-BTC", 3)


def test_label_with_generation_like_suffix_parses_greedily():
    assert parse_api_name(api_name("bot-g2", 7)) == ("bot-g2", 7)


def test_foreign_names_are_not_ours():
    for name in ["mystery-key", "orc-", "orc-x-g", "QuantBot-g3", "orc-x-gabc"]:
        assert parse_api_name(name) is None


def test_longest_label_fits_with_largest_generation():
    assert len(api_name("a" * MAX_LABEL, 999_999)) == MAX_API_NAME
