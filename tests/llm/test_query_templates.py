import json

import numpy as np
import pytest

from dataplatform.core.synthesis.fineinstructions import TemplateError
from dataplatform.core.synthesis.query_templates import (
    SMALL_SLOT_TYPES,
    load_query_log,
    parse_template_output,
    templates_from_queries,
)

GOOD = "[TEMPLATE]What is the best time to visit {city}?[/TEMPLATE]\n[SLOTS]\ncity: city\n[/SLOTS]\n[FITS]Travel guides to a city.[/FITS]"


def test_query_log_is_read_deduplicated_and_checked(tmp_path):
    log = tmp_path / "queries.jsonl"
    log.write_text(
        "# exported from the search box\n"
        + "\n".join(
            json.dumps(q)
            for q in (
                {"query": "best time to visit  kyoto"},
                {"text": "how to repot an orchid"},
                {"query": "best time to visit kyoto"},
            )
        )
        + "\n\n"
    )
    assert load_query_log([log]) == ["best time to visit kyoto", "how to repot an orchid"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "ok"}\n{"q": 1}\n')
    with pytest.raises(TemplateError, match=r"bad.jsonl:2: expected an object with a non-empty 'query'"):
        load_query_log([bad])
    broken = tmp_path / "broken.jsonl"
    broken.write_text("{nope\n")
    with pytest.raises(TemplateError, match="broken.jsonl:1: not valid JSON"):
        load_query_log([broken])


def test_parse_template_output():
    template, reason, _ = parse_template_output("best time to visit kyoto", GOOD)
    assert reason is None and template.template == "What is the best time to visit {city}?"
    assert template.slot_types == {"city": "city"} and template.fits == "Travel guides to a city."
    assert template.template_id == parse_template_output("best time to visit kyoto", GOOD)[0].template_id  # stable id
    assert (
        template.template_id.startswith("query-") and template.template_id != parse_template_output("other", GOOD)[0].template_id
    )
    assert parse_template_output("q", "[TEMPLATE]What is {x}?", "length")[1] == "query_templates:truncated"
    assert parse_template_output("q", "I do not know")[1] == "query_templates:missing_template"
    no_slot = parse_template_output("q", "[TEMPLATE]What is it?[/TEMPLATE][SLOTS][/SLOTS][FITS]f[/FITS]")
    assert no_slot[:2] == (None, "query_templates:invalid_template") and "no slot" in no_slot[2]
    mismatch = parse_template_output("q", "[TEMPLATE]Visit {city}[/TEMPLATE][SLOTS]town: city[/SLOTS][FITS]f[/FITS]")
    assert mismatch[1] == "query_templates:invalid_template" and "do not match" in mismatch[2]


def test_paper_profile_with_a_scripted_engine(scripted_engine):
    engine = scripted_engine(lambda p: GOOD.removesuffix("[/FITS]") if "kyoto" in p else "Kyoto is lovely in spring.")
    templates, failures = templates_from_queries(["best time to visit kyoto", "what is kyoto like", "repot an orchid"], engine)
    assert [t.template for t in templates] == ["What is the best time to visit {city}?"] * 2
    assert failures["query"].to_list() == ["repot an orchid"] and failures["reason"].to_list() == [
        "query_templates:missing_template"
    ]
    assert (
        failures["raw_output"].to_list() == ["Kyoto is lovely in spring."]
        and failures["prompt_version"][0] == "query_template_v1"
    )
    assert "Query: best time to visit kyoto" in engine.calls[0][0]


def test_small_model_profile_chooses_span_and_type_by_likelihood(scripted_engine):
    def choose(prompt, continuation):
        return 0.0 if continuation.strip() in ('"kyoto"', "place") else -4.0

    templates, failures = templates_from_queries(
        ["best time to visit kyoto", "how to do it"], scripted_engine(lambda p: "", choose=choose), "small_model"
    )
    [t] = templates
    assert t.template == "Best time to visit {place}" and t.slot_types == {"place": "place"}
    assert "best time to visit kyoto" in t.fits
    assert failures.to_dicts()[0]["reason"] == "query_templates:no_candidate_span"  # only function words
    with pytest.raises(ValueError, match="profile"):
        templates_from_queries(["q"], scripted_engine(lambda p: ""), "huge")


def test_default_model_makes_templates_from_queries(default_engine):
    queries = ["best time of year to visit kyoto", "what are the side effects of ibuprofen", "how to repot an orchid"]
    templates, failures = templates_from_queries(queries, default_engine, "small_model")
    assert len(templates) + failures.height == len(queries) and len(templates) >= 2
    for t in templates:
        [slot] = t.slots
        assert t.slot_types[slot] in SMALL_SLOT_TYPES and "{" + slot + "}" in t.template
        source = next(q for q in queries if q in t.fits)
        prefix, suffix = t.template.split("{" + slot + "}")
        assert source.lower().startswith(prefix.lower()) and source.endswith(suffix)  # the query with one span slotted
    assert np.isfinite(default_engine.score_continuations(["Is it?"], [" yes", " no"])).all()
