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
    extract_answer,
    generate_instruction_pairs,
    grounding_score,
    load_templates,
    match_templates,
    parse_instruction_only,
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
        + json.dumps(
            {
                "template_id": "x-1",
                "template": "Summarise {topic}.",
                "slot_types": {"topic": "topic"},
                "fits": "Any article about a topic worth summarising.",
            }
        )
        + "\n"
    )
    only = load_templates([extra], include_seed=False)
    assert only == [
        InstructionTemplate("x-1", "Summarise {topic}.", {"topic": "topic"}, "Any article about a topic worth summarising.")
    ]
    assert len(load_templates([extra])) == len(load_templates()) + 1
    bad_slots = tmp_path / "bad.jsonl"
    bad_slots.write_text(
        json.dumps({"template_id": "b", "template": "Tell me about {x}", "slot_types": {"y": "t"}, "fits": "f"}) + "\n"
    )
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
        (
            "[INSTRUCTION] What is flu? [/INSTRUCTION]\n[ANSWER] A viral infection. [/ANSWER]",
            "stop",
            ("What is flu?", "A viral infection.", None),
        ),
        (
            "[INSTRUCTION] What is flu? [/INSTRUCTION]\n[ANSWER] A viral infection.",
            "stop",
            ("What is flu?", "A viral infection.", None),
        ),
        ("[INSTRUCTION] What is flu? [ANSWER] A viral infection.", "stop", ("What is flu?", "A viral infection.", None)),
        ("", "stop", (None, None, "fineinstructions:empty_output")),
        ("null", "stop", (None, None, "fineinstructions:template_not_applicable")),
        (" `null`. ", "stop", (None, None, "fineinstructions:template_not_applicable")),
        ("[INSTRUCTION] null [/INSTRUCTION]", "stop", (None, None, "fineinstructions:template_not_applicable")),
        ("gibberish", "stop", (None, None, "fineinstructions:missing_instruction")),
        ("[INSTRUCTION] q [/INSTRUCTION] no answer", "stop", (None, None, "fineinstructions:missing_answer")),
        ("[INSTRUCTION] q [/INSTRUCTION] [ANSWER] half an ans", "length", (None, None, "fineinstructions:truncated")),
        ("[INSTRUCTION]  [/INSTRUCTION] [ANSWER] a [/ANSWER]", "stop", (None, None, "fineinstructions:empty_instruction")),
        (
            "[INSTRUCTION] What are the symptoms of {condition}? [/INSTRUCTION] [ANSWER] a [/ANSWER]",
            "stop",
            (None, None, "fineinstructions:unfilled_slot"),
        ),
        ("[INSTRUCTION] q [/INSTRUCTION] [ANSWER]  [/ANSWER]", "stop", (None, None, "fineinstructions:empty_answer")),
        ("", "prompt_too_long", (None, None, "fineinstructions:prompt_too_long")),
    ],
)
def test_parse_instruction_output(raw, finish, expected):
    assert parse_instruction_output(Generation(raw, 10, 10, finish)) == expected


@pytest.mark.parametrize(
    "raw, finish, expected",
    [
        ("What are the symptoms of influenza?", "stop", ("What are the symptoms of influenza?", None)),
        ('Question: "When should I visit Lisbon?"\n\nAnswer: in spring', "stop", ("When should I visit Lisbon?", None)),
        ("null", "stop", (None, "fineinstructions:template_not_applicable")),
        ("How can I save money on {expense}?", "stop", (None, "fineinstructions:unfilled_slot")),
        ("What is the recipe for [food]?", "stop", (None, "fineinstructions:unfilled_slot")),
        ("What is the best", "length", (None, "fineinstructions:truncated")),
        ("  \n", "stop", (None, "fineinstructions:empty_output")),
        ("Question:", "stop", (None, "fineinstructions:empty_instruction")),
        (
            'What is the answer to the question "What is the answer to the question?',
            "stop",
            (None, "fineinstructions:degenerate_instruction"),
        ),
    ],
)
def test_parse_instruction_only(raw, finish, expected):
    assert parse_instruction_only(Generation(raw, 10, 10, finish)) == expected


def test_prompts_contain_template_slots_document_and_the_null_option():
    t = next(t for t in load_templates() if t.template_id == "seed-006")
    prompt = build_instruction_prompt(t, DOCS["health"])
    assert t.template in prompt and "- condition: medical condition" in prompt and DOCS["health"] in prompt
    assert "[INSTRUCTION]" in prompt and "[/ANSWER]" in prompt and "80%" in prompt and "null" in prompt
    small = build_instruction_prompt(t, DOCS["health"], "fineinstructions_small_v1")
    assert "What are the symptoms of [medical condition] and how is it treated?" in small and "{condition}" not in small
    assert DOCS["health"] in small and "null" in small and "[ANSWER]" not in small


def test_extract_answer_quotes_the_most_relevant_sentences(minilm):
    [answer] = extract_answer(["What are the symptoms of influenza?"], [DOCS["health"]], minilm, n_sentences=1)
    assert answer == "Common symptoms include fever, chills, muscle aches, cough and fatigue."
    [two] = extract_answer(["What are the symptoms of influenza?"], [DOCS["health"]], minilm, n_sentences=2)
    assert answer in two and len(fi.split_sentences(two)) == 2 and two in DOCS["health"]  # consecutive sentences, verbatim
    assert grounding_score(two, DOCS["health"]) == 1.0
    assert extract_answer(["q"], [""], minilm) == [""]


FLU_PAIR = (
    "[INSTRUCTION] What are the symptoms of influenza and how is it treated? [/INSTRUCTION]\n[ANSWER] Common symptoms "
    "include fever, chills, muscle aches, cough and fatigue. Treatment includes rest, fluids and antiviral drugs such as "
    "oseltamivir. [/ANSWER]"
)


def test_generate_pairs_keeps_grounded_drops_ungrounded(minilm_index, scripted_engine):
    def respond(prompt):
        if "Influenza" in prompt:
            return FLU_PAIR
        if "Lisbon" in prompt:
            return "[INSTRUCTION] When should I visit Lisbon? [/INSTRUCTION]\n[ANSWER] Summer is the only good season and you must rent a car to see anything. [/ANSWER]"
        return "this is not the format"

    docs = docs_frame().filter(pl.col("doc_id").is_in(["health", "travel", "sport"]))
    index = minilm_index
    one = FineInstructionsConfig(top_k=1, min_match_score=None)
    engine = scripted_engine(respond)
    pairs, failures = generate_instruction_pairs(docs, index, None, engine, one)
    assert pairs.schema == pl.Schema(fi.PAIRS_SCHEMA) and failures.schema == pl.Schema(fi.FAILURES_SCHEMA)
    assert pairs["source_doc_id"].to_list() == ["health"]
    assert pairs["template_id"].to_list() == ["seed-006"]
    assert pairs["grounding_score"][0] >= 0.8
    assert pairs["instruction"][0].startswith("What are the symptoms of influenza")
    assert pairs.select("judge_rating", "judge_prompt_version", "prompt_version").row(0) == (4, "judge_v1", "fineinstructions_v2")
    assert len(engine.scored) == 1 and len(engine.scored[0]) == 1  # only the grounded pair reaches the judge
    assert (
        "Document:" in engine.scored[0][0] and "oseltamivir; the annual vaccine" in engine.scored[0][0]
    )  # judge_v1 shows the document
    reasons = dict(zip(failures["source_doc_id"], failures["reason"]))
    assert reasons == {"travel": "fineinstructions:ungrounded", "sport": "fineinstructions:missing_instruction"}
    assert failures.filter(pl.col("source_doc_id") == "travel")["grounding_score"][0] < 0.8
    again, _ = generate_instruction_pairs(docs, index, None, scripted_engine(respond), one)
    assert again["pair_id"].to_list() == pairs["pair_id"].to_list()
    # up to top_k templates per document, distinct ids
    two, _ = generate_instruction_pairs(
        docs.filter(pl.col("doc_id") == "health"),
        index,
        None,
        scripted_engine(respond),
        FineInstructionsConfig(top_k=2, min_match_score=None),
    )
    assert two.height == 2 and two["pair_id"].n_unique() == 2


def test_match_threshold_null_answers_and_the_judge(minilm_index, scripted_engine):
    docs = docs_frame().filter(pl.col("doc_id") == "health")
    scores = match_templates(docs, minilm_index, top_k=3)["match_score"].to_list()
    assert scores[0] >= fi.MINILM_MATCH_THRESHOLD > scores[-1]  # the default threshold drops the weaker matches
    pairs, failures = generate_instruction_pairs(docs, minilm_index, None, scripted_engine(lambda p: FLU_PAIR))
    assert pairs.height == sum(s >= fi.MINILM_MATCH_THRESHOLD for s in scores) and failures.height == 0
    # the instantiator may say that a template does not fit
    pairs, failures = generate_instruction_pairs(docs, minilm_index, None, scripted_engine(lambda p: "null"))
    assert pairs.height == 0 and set(failures["reason"]) == {"fineinstructions:template_not_applicable"}
    # the judge rates 2: grounded pairs are still dropped, with the rating kept
    harsh = scripted_engine(lambda p: FLU_PAIR, choose=lambda p, c: 0.0 if c == "2" else -3.0)
    pairs, failures = generate_instruction_pairs(docs, minilm_index, None, harsh)
    assert pairs.height == 0 and set(failures["reason"]) == {"fineinstructions:judge_rejected"}
    assert (failures["judge_rating"] == 2).all() and (failures["grounding_score"] >= 0.8).all()
    # min_judge_rating is configurable, and the judge can be switched off
    lenient = FineInstructionsConfig(min_judge_rating=2)
    assert generate_instruction_pairs(docs, minilm_index, None, harsh, lenient)[0].height == pairs.height + failures.height
    no_judge = FineInstructionsConfig(judge_prompt_version=None)
    unjudged, _ = generate_instruction_pairs(docs, minilm_index, None, harsh, no_judge)
    assert unjudged.height and unjudged["judge_rating"].null_count() == unjudged.height


def test_small_model_profile_extracts_the_answer(minilm_index, scripted_engine):
    config = FineInstructionsConfig.for_profile("small_model", max_tokens=32, top_k=1)
    assert (config.prompt_version, config.answer_mode, config.judge_prompt_version) == (
        "fineinstructions_small_v1",
        "extracted",
        "judge_small_v1",
    )
    engine = scripted_engine(lambda p: "What are the symptoms of influenza?" if "Influenza" in p else "null")
    pairs, failures = generate_instruction_pairs(docs_frame(), minilm_index, None, engine, config)
    assert pairs["source_doc_id"].to_list() == ["health"]
    answer = pairs["answer"][0]
    assert (
        "fever, chills" in answer
        and pairs["grounding_score"][0] == 1.0
        and pairs["prompt_version"][0] == "fineinstructions_small_v1"
    )
    assert (
        "Document:" not in engine.scored[0][0] and "Instruction: What are the symptoms" in engine.scored[0][0]
    )  # judge_small_v1
    assert set(failures["reason"]) == {"fineinstructions:template_not_applicable"}


def test_generate_pairs_with_tiny_model_counts_failures(tiny_engine):
    config = FineInstructionsConfig(
        sampling=SamplingConfig(max_tokens=16, stop=("[/ANSWER]",)), max_doc_chars=300, top_k=1, min_match_score=None
    )
    pairs, failures = generate_instruction_pairs(docs_frame(), load_templates(), HashingEmbedder(), tiny_engine, config)
    assert pairs.height + failures.height == len(DOCS)
    assert failures.height >= len(DOCS) - 1
    assert set(failures["reason"]).issubset(
        {r for r in vars(fi).values() if isinstance(r, str) and r.startswith("fineinstructions:")}
    )
    assert set(failures["source_doc_id"]) | set(pairs["source_doc_id"]) == set(DOCS)
    assert failures["template_id"].null_count() == 0


def test_default_model_writes_accepted_instruction_pairs(default_engine, minilm_index):
    """The bundled 135M model with the small-model profile on three documents that clearly match
    a template: the instructions parse, the answers are quoted, the judge rates every pair."""
    config = FineInstructionsConfig.for_profile("small_model", max_tokens=40, top_k=1)
    docs = docs_frame().filter(pl.col("doc_id").is_in(["health", "travel", "garden"]))
    pairs, failures = generate_instruction_pairs(docs, minilm_index, None, default_engine, config)
    assert pairs.height + failures.height == 3
    assert pairs.height >= 1, failures.select("reason", "raw_output").to_dicts()
    for row in pairs.iter_rows(named=True):
        assert row["model"] == "SmolLM2-135M-Instruct-Q4_1" and row["prompt_version"] == "fineinstructions_small_v1"
        assert row["instruction"] and "{" not in row["instruction"] and "\n" not in row["instruction"]
        assert row["grounding_score"] >= 0.8 and row["answer"] in " ".join(fi.split_sentences(DOCS[row["source_doc_id"]]))
        assert 4 <= row["judge_rating"] <= 5 and 1.0 <= row["judge_score"] <= 5.0
        assert 0 < row["n_generated_tokens"] <= 40
    assert failures["judge_rating"].drop_nulls().is_between(1, 3).all()
