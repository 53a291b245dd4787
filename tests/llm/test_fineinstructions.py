import json

import numpy as np
import polars as pl
import pytest

from dataplatform.core.synthesis import fineinstructions as fi
from dataplatform.core.synthesis.fineinstructions import (
    FineInstructionsConfig,
    HashingEmbedder,
    InstructionTemplate,
    TemplateError,
    TemplateIndex,
    build_instruction_prompt,
    generate_instruction_pairs,
    grounding_score,
    load_templates,
    match_templates,
    parse_instruction_output,
)
from dataplatform.llm.engine import Generation, SamplingConfig

DOCS = {
    "recipe": "Classic banana bread. Ingredients: 3 ripe bananas, 1/3 cup melted butter, 1 cup sugar, 1 egg, "
    "1 teaspoon baking soda, 1.5 cups flour. Preheat the oven to 175C, mash the bananas, mix in the butter, "
    "sugar and egg, fold in the flour and bake for 60 minutes.",
    "health": "Influenza is a viral infection. Common symptoms include fever, chills, muscle aches, cough and "
    "fatigue. Treatment includes rest, fluids and antiviral drugs such as oseltamivir; the annual vaccine prevents it.",
    "sport": "Manchester United beat Liverpool 2-1 at Old Trafford on Sunday. Rashford opened the scoring in the "
    "12th minute, Salah equalised before half time and Fernandes won it with a late penalty.",
    "travel": "Lisbon is best visited in spring or early autumn. Don't miss the Belem Tower, the Alfama district, "
    "tram 28 and a day trip to Sintra. The city is compact and walkable.",
    "garden": "Tomatoes need six to eight hours of sun, well-drained soil and regular watering. Stake the plants, "
    "pinch off suckers and feed them every two weeks once the first fruit sets.",
}
EXPECTED = {"recipe": "seed-002", "health": "seed-006", "sport": "seed-015", "travel": "seed-009", "garden": "seed-019"}


def docs_frame():
    return pl.DataFrame({"doc_id": list(DOCS), "text": list(DOCS.values())})


def test_seed_bank_loads_and_is_valid():
    templates = load_templates()
    assert 35 <= len(templates) <= 60
    assert len({t.template_id for t in templates}) == len(templates)
    for t in templates:
        assert set(t.slots) == set(t.slot_types) and t.slots
        assert len(t.fits) > 30


def test_extra_template_files_and_errors(tmp_path):
    extra = tmp_path / "extra.jsonl"
    extra.write_text(
        "# project templates\n\n"
        + json.dumps({"template_id": "x-1", "template": "Summarise {topic}.", "slot_types": {"topic": "topic"}, "fits": "Any article about a topic worth summarising."})
        + "\n"
    )
    only = load_templates([extra], include_seed=False)
    assert only == [InstructionTemplate("x-1", "Summarise {topic}.", {"topic": "topic"}, "Any article about a topic worth summarising.")]
    assert len(load_templates([extra])) == len(load_templates()) + 1
    bad_slots = tmp_path / "bad.jsonl"
    bad_slots.write_text(json.dumps({"template_id": "b", "template": "Tell me about {x}", "slot_types": {"y": "t"}, "fits": "f"}) + "\n")
    with pytest.raises(TemplateError, match=r"bad.jsonl:1: slots in template"):
        load_templates([bad_slots], include_seed=False)
    dup = tmp_path / "dup.jsonl"
    dup.write_text(extra.read_text() + extra.read_text().splitlines()[-1] + "\n")
    with pytest.raises(TemplateError, match="duplicate template_id 'x-1'"):
        load_templates([dup], include_seed=False)
    broken = tmp_path / "broken.jsonl"
    broken.write_text("{not json\n")
    with pytest.raises(TemplateError, match="broken.jsonl:1: not valid JSON"):
        load_templates([broken], include_seed=False)


def test_minilm_matches_obvious_documents_to_the_right_template(minilm, minilm_index):
    vecs = minilm.embed(["hello", "world"])
    assert vecs.shape == (2, 384) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-5)
    matches = match_templates(docs_frame(), minilm_index, top_k=3)
    best = {r["doc_id"]: r["template_id"] for r in matches.filter(pl.col("rank") == 0).iter_rows(named=True)}
    assert best == EXPECTED
    assert matches.height == 3 * len(DOCS)
    assert matches["doc_id"].to_list()[::3] == list(DOCS)  # input order, then rank
    scores = matches["match_score"].to_numpy().reshape(len(DOCS), 3)
    assert np.all(np.diff(scores, axis=1) <= 1e-6)


def test_hashing_embedder_is_deterministic_and_matches_lexically():
    emb = HashingEmbedder(dim=256)
    a, b = emb.embed(["the cat sat on the mat"]), emb.embed(["the cat sat on the mat"])
    np.testing.assert_array_equal(a, b)
    assert abs(float(np.linalg.norm(a)) - 1.0) < 1e-5
    templates = load_templates()
    target = next(t for t in templates if t.template_id == "seed-019")
    docs = pl.DataFrame({"doc_id": ["d"], "text": [target.matching_text()]})
    m = match_templates(docs, templates, emb, top_k=1)
    assert m["template_id"].to_list() == ["seed-019"] and m["match_score"][0] > 0.99
    assert match_templates(docs, templates, emb, min_score=1.01).height == 0
    assert match_templates(docs.head(0), templates, emb).height == 0
    assert match_templates(docs, TemplateIndex(templates, emb), top_k=1).equals(m)
    with pytest.raises(ValueError, match="embedder"):
        match_templates(docs, templates)


def test_grounding_score_keeps_quotes_and_drops_inventions():
    doc = DOCS["health"]
    quoted = "Common symptoms include fever, chills, muscle aches, cough and fatigue. Treatment includes rest and fluids."
    invented = "The flu is caused by eating cold food in winter, and the best cure is garlic soup with honey."
    assert grounding_score(quoted, doc) >= 0.8
    assert grounding_score(invented, doc) < 0.3
    assert grounding_score("", doc) == 0.0
    assert grounding_score("fever", doc) == 1.0  # shorter than the n-gram: word containment
    assert grounding_score("FEVER, chills; muscle aches!", doc) == 1.0  # case and punctuation ignored


@pytest.mark.parametrize(
    "raw, finish, expected",
    [
        ("[INSTRUCTION] What is flu? [/INSTRUCTION]\n[ANSWER] A viral infection. [/ANSWER]", "stop", ("What is flu?", "A viral infection.", None)),
        ("[INSTRUCTION] What is flu? [/INSTRUCTION]\n[ANSWER] A viral infection.", "stop", ("What is flu?", "A viral infection.", None)),
        ("[INSTRUCTION] What is flu? [ANSWER] A viral infection.", "stop", ("What is flu?", "A viral infection.", None)),
        ("", "stop", (None, None, "fineinstructions:empty_output")),
        ("gibberish", "stop", (None, None, "fineinstructions:missing_instruction")),
        ("[INSTRUCTION] q [/INSTRUCTION] no answer", "stop", (None, None, "fineinstructions:missing_answer")),
        ("[INSTRUCTION] q [/INSTRUCTION] [ANSWER] half an ans", "length", (None, None, "fineinstructions:truncated")),
        ("[INSTRUCTION]  [/INSTRUCTION] [ANSWER] a [/ANSWER]", "stop", (None, None, "fineinstructions:empty_instruction")),
        ("[INSTRUCTION] What are the symptoms of {condition}? [/INSTRUCTION] [ANSWER] a [/ANSWER]", "stop", (None, None, "fineinstructions:unfilled_slot")),
        ("[INSTRUCTION] q [/INSTRUCTION] [ANSWER]  [/ANSWER]", "stop", (None, None, "fineinstructions:empty_answer")),
        ("", "prompt_too_long", (None, None, "fineinstructions:prompt_too_long")),
    ],
)
def test_parse_instruction_output(raw, finish, expected):
    assert parse_instruction_output(Generation(raw, 10, 10, finish)) == expected


def test_prompt_contains_template_slots_and_document():
    t = next(t for t in load_templates() if t.template_id == "seed-006")
    prompt = build_instruction_prompt(t, DOCS["health"])
    assert t.template in prompt and "- condition: medical condition" in prompt and DOCS["health"] in prompt
    assert "[INSTRUCTION]" in prompt and "[/ANSWER]" in prompt and "80%" in prompt


def test_generate_pairs_keeps_grounded_drops_ungrounded(minilm_index, scripted_engine):
    def respond(prompt):
        if "Influenza" in prompt:
            return "[INSTRUCTION] What are the symptoms of influenza and how is it treated? [/INSTRUCTION]\n[ANSWER] Common symptoms include fever, chills, muscle aches, cough and fatigue. Treatment includes rest, fluids and antiviral drugs such as oseltamivir. [/ANSWER]"
        if "Lisbon" in prompt:
            return "[INSTRUCTION] When should I visit Lisbon? [/INSTRUCTION]\n[ANSWER] Summer is the only good season and you must rent a car to see anything. [/ANSWER]"
        return "this is not the format"

    docs = docs_frame().filter(pl.col("doc_id").is_in(["health", "travel", "sport"]))
    index = minilm_index
    pairs, failures = generate_instruction_pairs(docs, index, None, scripted_engine(respond))
    assert pairs.schema == pl.Schema(fi.PAIRS_SCHEMA) and failures.schema == pl.Schema(fi.FAILURES_SCHEMA)
    assert pairs["source_doc_id"].to_list() == ["health"]
    assert pairs["template_id"].to_list() == ["seed-006"]
    assert pairs["grounding_score"][0] >= 0.8
    assert pairs["instruction"][0].startswith("What are the symptoms of influenza")
    reasons = dict(zip(failures["source_doc_id"], failures["reason"]))
    assert reasons == {"travel": "fineinstructions:ungrounded", "sport": "fineinstructions:missing_instruction"}
    assert failures.filter(pl.col("source_doc_id") == "travel")["grounding_score"][0] < 0.8
    again, _ = generate_instruction_pairs(docs, index, None, scripted_engine(respond))
    assert again["pair_id"].to_list() == pairs["pair_id"].to_list()
    # top_k=2: two pairs per document, distinct ids
    two, _ = generate_instruction_pairs(
        docs.filter(pl.col("doc_id") == "health"), index, None, scripted_engine(respond), FineInstructionsConfig(top_k=2)
    )
    assert two.height == 2 and two["pair_id"].n_unique() == 2


def test_generate_pairs_with_tiny_model_counts_failures(tiny_engine):
    config = FineInstructionsConfig(sampling=SamplingConfig(max_tokens=16, stop=("[/ANSWER]",)), max_doc_chars=300)
    pairs, failures = generate_instruction_pairs(docs_frame(), load_templates(), HashingEmbedder(), tiny_engine, config)
    assert pairs.height + failures.height == len(DOCS)
    assert failures.height >= len(DOCS) - 1
    assert set(failures["reason"]).issubset({r for r in vars(fi).values() if isinstance(r, str) and r.startswith("fineinstructions:")})
    assert set(failures["source_doc_id"]) | set(pairs["source_doc_id"]) == set(DOCS)
    assert failures["template_id"].null_count() == 0
