import numpy as np
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
    top_by_rank,
)
from dataplatform.llm.engine import Generation, SamplingConfig

SOURCE = (
    "bread recipe!!! click here. mix flour water salt yeast. knead 10 min. rise 1 hour. bake 230C 30 min. share on facebook. " * 2
)
GOOD = (
    "Basic bread needs only flour, water, salt and yeast. Mix them, knead the dough for ten minutes, "
    "let it rise for an hour and bake it at 230 degrees Celsius for thirty minutes."
)


def gen(text, finish="stop"):
    return Generation(text, 100, 50, finish)


def test_paper_profile_is_the_default_with_the_papers_sampling():
    config = RewireConfig()
    assert config.prompt_version == "rewire_v2" and config.output_format == "markers"
    assert (config.sampling.temperature, config.sampling.top_p, config.sampling.max_tokens) == (1.0, 0.9, 8192)
    assert config.sampling.stop == (END_MARKER,) and config.max_length_ratio is None and config.min_length_ratio == 0
    small = RewireConfig.for_profile("small_model", max_tokens=64, max_doc_chars=500, seed=3)
    assert small.prompt_version == "rewire_small_v1" and small.output_format == "whole_turn"
    assert (small.sampling.temperature, small.sampling.top_p, small.sampling.seed, small.sampling.stop) == (0.7, 0.9, 3, ())
    assert RewireConfig.for_profile("paper", max_tokens=8, max_doc_chars=9, temperature=0.0).sampling.greedy
    with pytest.raises(ValueError, match="profile"):
        RewireConfig.for_profile("huge", max_tokens=8, max_doc_chars=9)
    with pytest.raises(ValueError, match="not a REWIRE prompt"):
        RewireConfig(prompt_version="fineinstructions_v2")


def test_prompts_are_versioned_and_contain_the_document():
    [prompt] = build_rewire_prompts([SOURCE], max_doc_chars=10_000)
    assert SOURCE.strip() in prompt
    assert "purpose" in prompt.lower() and "not be shorter than the original" in prompt
    assert START_MARKER in prompt and END_MARKER in prompt
    [small] = build_rewire_prompts([SOURCE], prompt_version="rewire_small_v1")
    assert (
        SOURCE.strip() in small and f"about {round(len(SOURCE.split()) / 10) * 10} words" in small and START_MARKER not in small
    )
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
        (f"{START_MARKER} {GOOD * 10} {END_MARKER}", "stop", (GOOD * 10).strip()),  # no length cap by default (paper)
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
        ("", "prompt_too_long", "rewire:prompt_too_long"),
    ],
)
def test_parse_malformed_outputs_never_raise(output, finish, reason):
    assert parse_rewire_output(gen(output, finish), len(SOURCE)) == (None, reason)
    assert reason in rewire.REASONS


def test_parse_whole_turn_outputs():
    assert parse_rewire_output(gen(f"Here is the rewritten text:\n{GOOD}"), len(SOURCE), output_format="whole_turn") == (
        GOOD,
        None,
    )
    assert parse_rewire_output(gen(GOOD), len(SOURCE), output_format="whole_turn") == (GOOD, None)
    assert parse_rewire_output(gen(GOOD, "length"), len(SOURCE), output_format="whole_turn") == (None, "rewire:truncated")
    assert parse_rewire_output(gen("Too short."), len(SOURCE), output_format="whole_turn") == (None, "rewire:too_short")
    # a first line that is content, not a preamble, is kept
    text = "Heat: the oven must reach 230 degrees.\n" + GOOD
    assert parse_rewire_output(gen(text), len(SOURCE), output_format="whole_turn")[0] == text


def test_parse_bounds_are_configurable_and_plain_strings_work():
    out = f"{START_MARKER}{GOOD}{END_MARKER}"
    assert parse_rewire_output(out, len(SOURCE))[0] == GOOD
    assert parse_rewire_output(out, len(SOURCE), min_length_ratio=0.9)[1] == "rewire:too_short"
    assert parse_rewire_output(out, len(SOURCE), max_length_ratio=0.5, min_length_ratio=0.1)[1] == "rewire:too_long"
    assert parse_rewire_output(out, None, min_chars=10_000)[1] == "rewire:too_short"
    assert parse_rewire_output(None)[1] == "rewire:empty_output"
    with pytest.raises(ValueError, match="min_length_ratio"):
        RewireConfig(min_length_ratio=2.0, max_length_ratio=1.0)


def test_top_by_rank_keeps_the_best_fraction_at_least_one():
    scores = np.array([0.2, 0.9, np.nan, 0.5, 0.9, 0.1, 0.3, 0.4, 0.6, 0.7, 0.8])
    ids = [f"d{i:02d}" for i in range(len(scores))]
    keep = top_by_rank(scores, ids, 0.10)  # ceil(1.1) = 2 of 11
    assert [ids[i] for i in np.flatnonzero(keep)] == ["d01", "d04"]
    assert top_by_rank(scores[:3], ids[:3], 0.10).tolist() == [False, True, False]  # a small partition keeps one
    assert top_by_rank(scores, ids, 1.0).all() and not top_by_rank([], [], 0.1).size
    tied = top_by_rank([0.5, 0.5, 0.5], ["c", "a", "b"], 0.34)  # ceil(1.02) = 2: ties by id
    assert tied.tolist() == [False, True, True]
    with pytest.raises(ValueError, match="fraction"):
        top_by_rank(scores, ids, 0.0)


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
    config = RewireConfig(min_chars=20)
    out, failures = rewrite_documents(docs_frame(), engine, config)
    assert out.schema == pl.Schema(rewire.REWRITTEN_SCHEMA)
    assert failures.schema == pl.Schema(rewire.FAILURES_SCHEMA)
    assert out["source_doc_id"].to_list() == ["d1", "d4"]
    assert out["text"].to_list() == [GOOD, GOOD]
    assert out["prompt_version"].unique().to_list() == ["rewire_v2"]
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


REAL_DOCS = {
    "bread": "bread recipe!!! click here for more. mix 500g flour, 350ml water, 10g salt and 7g yeast. "
    "knead 10 min. let it rise 1 hour. bake at 230C for 30 min. share on facebook. subscribe!!",
    "flu": "Influenza is a viral infection. Common symptoms include fever, chills, muscle aches, cough and "
    "fatigue. Treatment includes rest, fluids and antiviral drugs. Home | About | Contact | Login",
    "tomato": "Tomatoes need six to eight hours of sun, well-drained soil and regular watering. Stake the plants "
    "and feed them every two weeks once the first fruit sets. Advertisement. Buy seeds now!",
}


def test_default_model_rewrites_documents_with_the_small_model_profile(default_engine):
    """The bundled SmolLM2-135M-Instruct on three short documents: seeded sampling, so the run is
    reproducible; at least one rewrite is accepted and every accepted rewrite is a real text."""
    config = RewireConfig.for_profile("small_model", max_tokens=160, max_doc_chars=400, seed=0)
    docs = pl.DataFrame({"doc_id": list(REAL_DOCS), "text": list(REAL_DOCS.values())})
    out, failures = rewrite_documents(docs, default_engine, config)
    assert out.height + failures.height == len(REAL_DOCS)
    assert out.height >= 1, failures.select("reason", "raw_output").to_dicts()
    assert set(failures["reason"]) <= set(rewire.REASONS)
    for row in out.iter_rows(named=True):
        assert row["model"] == "SmolLM2-135M-Instruct-Q4_1" and row["prompt_version"] == "rewire_small_v1"
        assert len(row["text"]) >= config.min_chars and 0 < row["n_generated_tokens"] < 160
        assert START_MARKER not in row["text"] and "<|im_end|>" not in row["text"]
        assert (
            len(set(row["text"].lower().split()) & set(REAL_DOCS[row["source_doc_id"]].lower().split())) >= 3
        )  # about its source
    again, _ = rewrite_documents(docs, default_engine, config)
    assert again["text"].to_list() == out["text"].to_list()  # seeded per prompt: reproducible


def test_small_model_profile_drops_rewrites_that_are_not_about_the_source(scripted_engine):
    assert rewire.source_overlap("Mix the flour, water, salt and yeast.", SOURCE) == 1.0
    assert rewire.source_overlap("The original text lacks a clear structure.", SOURCE) == 0.0
    assert rewire.source_overlap("The and for.", SOURCE) == 1.0  # no content word: nothing to judge

    def respond(prompt):
        return GOOD if "printing" not in prompt else "The original text is hard to follow and lacks a clear structure."

    config = RewireConfig.for_profile("small_model", max_tokens=64, max_doc_chars=1000)
    assert config.min_source_overlap == 0.3 and RewireConfig().min_source_overlap == 0.0
    out, failures = rewrite_documents(docs_frame(), scripted_engine(respond), config)
    assert out["source_doc_id"].to_list() == ["d1"]  # d4 (photosynthesis) gets the bread text: off source too
    assert dict(zip(failures["source_doc_id"], failures["reason"])) == {
        "d2": "rewire:off_source",
        "d3": "rewire:empty_source",
        "d4": "rewire:off_source",
    }
