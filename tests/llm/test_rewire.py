import polars as pl
import pytest

from dataplatform.core.synthesis import rewire
from dataplatform.core.synthesis.rewire import (
    END_MARKER,
    START_MARKER,
    RewireConfig,
    build_rewire_prompts,
    parse_rewire_output,
    rewrite_documents,
)
from dataplatform.llm.engine import Generation, SamplingConfig

SOURCE = (
    "bread recipe!!! click here. mix flour water salt yeast. knead 10 min. rise 1 hour. "
    "bake 230C 30 min. share on facebook. " * 2
)
GOOD = (
    "Basic bread needs only flour, water, salt and yeast. Mix them, knead the dough for ten minutes, "
    "let it rise for an hour and bake it at 230 degrees Celsius for thirty minutes."
)


def gen(text, finish="stop"):
    return Generation(text, 100, 50, finish)


def test_prompt_is_versioned_and_contains_the_document():
    [prompt] = build_rewire_prompts([SOURCE], max_doc_chars=10_000)
    assert SOURCE.strip() in prompt
    assert "purpose" in prompt and START_MARKER in prompt and END_MARKER in prompt
    [short] = build_rewire_prompts(["word " * 1000], max_doc_chars=100)
    assert short.count("word") < 30  # truncated document
    with pytest.raises(ValueError, match="prompt_version"):
        build_rewire_prompts(["x"], prompt_version="rewire_v999")
    with pytest.raises(ValueError, match="prompt_version"):
        build_rewire_prompts(["x"], prompt_version="../etc/passwd")


@pytest.mark.parametrize(
    "output, finish, expected",
    [
        (f"Purpose: a recipe.\nSteps: ...\n{START_MARKER}\n{GOOD}\n{END_MARKER}", "stop", GOOD),
        (f"analysis {START_MARKER} {GOOD}", "stop", GOOD),  # end marker consumed as stop string
        (f"The markers are {START_MARKER} and {END_MARKER}. {START_MARKER}{GOOD}{END_MARKER} trailing", "stop", GOOD),
    ],
)
def test_parse_good_outputs(output, finish, expected):
    text, reason = parse_rewire_output(gen(output, finish), len(SOURCE))
    assert (text, reason) == (expected, None)


@pytest.mark.parametrize(
    "output, finish, reason",
    [
        ("", "stop", "rewire:empty_output"),
        ("   \n ", "stop", "rewire:empty_output"),
        ("I think the document is about bread.", "stop", "rewire:missing_start_marker"),
        ("I think the document is about bread and", "length", "rewire:truncated"),
        (f"{START_MARKER} {GOOD[:60]}", "length", "rewire:truncated"),
        (f"{START_MARKER}   {END_MARKER}", "stop", "rewire:empty_rewrite"),
        (f"{START_MARKER} Bread. {END_MARKER}", "stop", "rewire:too_short"),
        (f"{START_MARKER} {GOOD * 10} {END_MARKER}", "stop", "rewire:too_long"),
        ("", "prompt_too_long", "rewire:prompt_too_long"),
    ],
)
def test_parse_malformed_outputs_never_raise(output, finish, reason):
    assert parse_rewire_output(gen(output, finish), len(SOURCE)) == (None, reason)
    assert reason in rewire.REASONS


def test_parse_bounds_are_configurable_and_plain_strings_work():
    out = f"{START_MARKER}{GOOD}{END_MARKER}"
    assert parse_rewire_output(out, len(SOURCE))[0] == GOOD
    assert parse_rewire_output(out, len(SOURCE), min_length_ratio=0.9)[1] == "rewire:too_short"
    assert parse_rewire_output(out, len(SOURCE), max_length_ratio=0.5, min_length_ratio=0.1)[1] == "rewire:too_long"
    assert parse_rewire_output(out, None, min_chars=10_000)[1] == "rewire:too_short"
    assert parse_rewire_output(None)[1] == "rewire:empty_output"
    with pytest.raises(ValueError, match="min_length_ratio"):
        RewireConfig(min_length_ratio=2.0, max_length_ratio=1.0)


def docs_frame():
    return pl.DataFrame(
        {
            "doc_id": ["d1", "d2", "d3", "d4"],
            "text": [SOURCE, "the printing press was invented " * 8, "", "photosynthesis makes sugar " * 6],
        }
    )


def test_rewrite_documents_with_scripted_well_formed_outputs(scripted_engine):
    def respond(prompt):
        if "printing" in prompt:
            return "no markers at all"
        return f"Purpose: explain.\n{START_MARKER}\n{GOOD}\n{END_MARKER}"

    engine = scripted_engine(respond)
    config = RewireConfig(min_chars=20, min_length_ratio=0.1)
    out, failures = rewrite_documents(docs_frame(), engine, config)
    assert out.schema == pl.Schema(rewire.REWRITTEN_SCHEMA)
    assert failures.schema == pl.Schema(rewire.FAILURES_SCHEMA)
    assert out["source_doc_id"].to_list() == ["d1", "d4"]
    assert out["text"].to_list() == [GOOD, GOOD]
    assert out["prompt_version"].unique().to_list() == ["rewire_v1"]
    assert out["model"].unique().to_list() == ["scripted-lm"]
    assert out["doc_id"].n_unique() == 2 and not set(out["doc_id"]) & {"d1", "d4"}
    assert dict(zip(failures["source_doc_id"], failures["reason"])) == {
        "d2": "rewire:missing_start_marker",
        "d3": "rewire:empty_source",
    }
    assert failures.filter(pl.col("source_doc_id") == "d2")["raw_output"].item() == "no markers at all"
    assert sum(len(c) for c in engine.calls) == 3  # the empty document never reaches the model
    # stable ids: a re-run gives the same ids
    again, _ = rewrite_documents(docs_frame().to_arrow(), scripted_engine(respond), config)
    assert again["doc_id"].to_list() == out["doc_id"].to_list()


def test_rewrite_documents_with_tiny_model_counts_gibberish(tiny_engine):
    config = RewireConfig(sampling=SamplingConfig(max_tokens=24, stop=(END_MARKER,)), max_doc_chars=400)
    out, failures = rewrite_documents(docs_frame(), tiny_engine, config)
    assert out.height + failures.height == 4
    assert set(out["source_doc_id"]) | set(failures["source_doc_id"]) == {"d1", "d2", "d3", "d4"}
    assert failures.height >= 3  # a random model does not write markers
    assert set(failures["reason"]) <= set(rewire.REASONS)
    assert failures.filter(pl.col("source_doc_id") == "d3")["reason"].item() == "rewire:empty_source"
    assert (failures["model"] == "tiny-test-lm").all()
    generated = failures.filter(pl.col("reason") != "rewire:empty_source")
    assert (generated["reason"] != "rewire:prompt_too_long").all() and (generated["n_generated_tokens"] > 0).all()
    again_out, again_failures = rewrite_documents(docs_frame(), tiny_engine, config)
    assert again_failures.equals(failures) and again_out.equals(out)  # greedy: deterministic
