"""Benchmark: the synthesis stages on CPU with the bundled default model (SmolLM2-135M-Instruct).

Sections (each prints a markdown table; ``--json`` writes every number to a file):

1. **Generation throughput**: the platform engine (``TransformersEngine.generate``: chat rendering,
   tokenization, per-prompt seeded top-p sampling, parsing of finish reasons) vs a bare
   ``model.generate(do_sample=True, top_p=...)`` loop on the same prompts and model (the peer), in
   generated tokens/s, and the ratio. Batch of ``--batch`` REWIRE prompts, ``--max-tokens`` new tokens.
2. **Acceptance per stage** with the small-model profiles on ``--docs`` documents of the bundled
   sample crawl (REWIRE pool: every filtered + deduplicated document; FineInstructions: documents
   with a template above the MiniLM threshold): parsed rewrites, rewrites past the rank cut of a
   rewrite classifier trained on them, instructions parsed, pairs grounded, pairs judged >= 4.
3. **Judge discrimination**: the 1-5 judge on hand-labelled pairs (a correct answer and an
   unrelated one per instruction): mean expected rating of each kind.
4. **Template matching calibration**: precision/recall of the MiniLM cosine threshold on
   ``templates/match_calibration.jsonl`` (24 documents x 40 templates).
5. **Min-K% controlled experiment**: tiny model trained on half of 40 same-distribution texts;
   AUC (with 95% bootstrap CI) of trained vs held-out, and of the untrained control.

Peak RSS of the process is reported at the end. Documents come from a finished
``dataplatform demo`` (``--data-root``, default ``.dataplatform/demo``).

    dataplatform demo && python benchmarks/bench_synthesis_cpu.py [--docs 8] [--batch 4] [--max-tokens 128]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
sys.path.insert(0, str(REPO))

JUDGE_PAIRS = [  # (instruction, correct answer, unrelated answer)
    (
        "What is the best time to visit Lisbon?",
        "Lisbon is best visited in spring or early autumn.",
        "Manchester United beat Liverpool 2-1 at Old Trafford on Sunday.",
    ),
    (
        "What are the symptoms of influenza?",
        "Common symptoms include fever, chills, muscle aches, cough and fatigue.",
        "Tomatoes need six to eight hours of sun and regular watering.",
    ),
    (
        "How do I grow tomatoes?",
        "Tomatoes need six to eight hours of sun, well-drained soil and regular watering.",
        "The French Revolution began in 1789.",
    ),
    (
        "How long should bread bake?",
        "Bake the loaf at 230 degrees Celsius for thirty minutes.",
        "Influenza is a viral infection treated with rest and fluids.",
    ),
]


def table(headers: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def sample_store(data_root: str):
    from dataplatform.io.datasets import DatasetStore

    store = DatasetStore.local(data_root)
    if len(store.partitions("decontaminated")) < 1:
        sys.exit(
            f"bench_synthesis_cpu: no decontaminated snapshots under {data_root}: run `dataplatform demo --data-root {data_root}` first"
        )
    return store


def throughput(engine, texts: list[str], max_tokens: int, batch: int) -> dict:
    import torch
    from transformers import GenerationConfig

    from dataplatform.core.synthesis.rewire import build_rewire_prompts
    from dataplatform.llm.engine import SamplingConfig

    prompts = build_rewire_prompts(texts[:batch], 700, "rewire_small_v1")
    sampling = SamplingConfig(max_tokens=max_tokens, temperature=0.7, top_p=0.9, seed=0)
    engine.generate(prompts[:1], SamplingConfig(max_tokens=4))  # warm-up
    started = time.perf_counter()
    ours = engine.generate(prompts, sampling)
    ours_s = time.perf_counter() - started
    ours_tokens = sum(g.n_generated_tokens for g in ours)
    ids = engine.encode_prompts(prompts)
    width = max(len(i) for i in ids)
    input_ids = torch.full((len(ids), width), engine.pad_id, dtype=torch.long)
    mask = torch.zeros_like(input_ids)
    for row, i in enumerate(ids):
        input_ids[row, width - len(i) :] = torch.tensor(i)
        mask[row, width - len(i) :] = 1
    config = GenerationConfig(
        max_new_tokens=max_tokens,
        do_sample=True,
        temperature=0.7,
        top_p=0.9,
        eos_token_id=engine.eos_ids,
        pad_token_id=engine.pad_id,
    )
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(engine.num_threads or threads)
    started = time.perf_counter()
    with torch.inference_mode():
        out = engine.model.generate(input_ids=input_ids, attention_mask=mask, generation_config=config)
    bare_s = time.perf_counter() - started
    torch.set_num_threads(threads)
    new = out[:, width:]
    bare_tokens = int(sum(int((row != engine.pad_id).sum()) + (1 if (row == engine.pad_id).any() else 0) for row in new))
    return {
        "prompts": len(prompts),
        "max_tokens": max_tokens,
        "platform_tokens": ours_tokens,
        "platform_s": round(ours_s, 2),
        "platform_tokens_per_s": round(ours_tokens / ours_s, 2),
        "bare_tokens": bare_tokens,
        "bare_s": round(bare_s, 2),
        "bare_tokens_per_s": round(bare_tokens / bare_s, 2),
        "ratio": round((ours_tokens / ours_s) / (bare_tokens / bare_s), 3),
    }


def acceptance(store, engine, n_docs: int) -> dict:
    import polars as pl

    from dataplatform.core.quality_classifier import default_positives, train_quality_classifier
    from dataplatform.core.synthesis.fineinstructions import (
        FineInstructionsConfig,
        SentenceTransformerEmbedder,
        TemplateIndex,
        generate_instruction_pairs,
        load_templates,
    )
    from dataplatform.core.synthesis.rewire import RewireConfig, rewrite_documents, top_by_rank
    from dataplatform.stages.synthesis import rewire_pool, stable_sample

    snapshots = store.partitions("decontaminated")
    pool = pl.concat([rewire_pool(store, s, "filtered_and_deduplicated")[0] for s in snapshots])
    docs = stable_sample(pool, n_docs, "bench")
    rewire = RewireConfig.for_profile("small_model", max_tokens=256, max_doc_chars=700, seed=0)
    started = time.perf_counter()
    rewrites, failures = rewrite_documents(docs.select("doc_id", "text"), engine, rewire)
    rewire_s = time.perf_counter() - started
    tokens = int(rewrites["n_generated_tokens"].sum() or 0) + int(failures["n_generated_tokens"].sum() or 0)
    kept = 0
    if rewrites.height:
        classifier = train_quality_classifier(default_positives(), rewrites["text"], seed=0)
        kept = int(top_by_rank(classifier.score(rewrites["text"]), rewrites["doc_id"].to_list(), 0.10).sum())
    embedder = SentenceTransformerEmbedder(num_threads=1)
    index = TemplateIndex(load_templates(), embedder)
    fi = FineInstructionsConfig.for_profile("small_model", max_tokens=48, top_k=3)
    candidates = pl.concat([store.read_frame("decontaminated", s).select("doc_id", "text") for s in snapshots])
    matched = index.search(candidates, fi.top_k, fi.min_match_score)["doc_id"].unique()
    fi_docs = stable_sample(candidates.filter(pl.col("doc_id").is_in(matched.implode())), n_docs, "bench")
    started = time.perf_counter()
    pairs, pair_failures = generate_instruction_pairs(fi_docs, index, None, engine, fi)
    fi_s = time.perf_counter() - started
    attempts = pairs.height + pair_failures.height
    reasons = dict(sorted(pair_failures["reason"].value_counts().iter_rows())) if pair_failures.height else {}
    parsed = attempts - sum(
        v
        for k, v in reasons.items()
        if k not in ("fineinstructions:ungrounded", "fineinstructions:judge_rejected", "fineinstructions:judge_unscored")
    )
    return {
        "rewire_docs": docs.height,
        "rewire_parsed": rewrites.height,
        "rewire_kept_top10": kept,
        "rewire_failures": dict(sorted(failures["reason"].value_counts().iter_rows())) if failures.height else {},
        "rewire_tokens": tokens,
        "rewire_s": round(rewire_s, 1),
        "rewire_tokens_per_s": round(tokens / rewire_s, 2),
        "pairs_docs": fi_docs.height,
        "pairs_attempts": attempts,
        "pairs_parsed": parsed,
        "pairs_grounded": parsed - reasons.get("fineinstructions:ungrounded", 0),
        "pairs_accepted": pairs.height,
        "pairs_failures": reasons,
        "pairs_s": round(fi_s, 1),
        "rewrite_examples": rewrites["text"].head(2).to_list(),
        "pair_examples": pairs.select("instruction", "answer").head(2).to_dicts(),
    }


def judge_discrimination(engine) -> dict:
    from dataplatform.core.synthesis.judge import judge_pairs

    out = {}
    for version in ("judge_small_v1", "judge_v1"):
        good = judge_pairs(engine, [p[0] for p in JUDGE_PAIRS], [p[1] for p in JUDGE_PAIRS], [p[1] for p in JUDGE_PAIRS], version)
        bad = judge_pairs(engine, [p[0] for p in JUDGE_PAIRS], [p[2] for p in JUDGE_PAIRS], [p[1] for p in JUDGE_PAIRS], version)
        out[version] = {
            "correct_mean_score": round(float(good.scores.mean()), 2),
            "unrelated_mean_score": round(float(bad.scores.mean()), 2),
            "correct_ratings": good.ratings.tolist(),
            "unrelated_ratings": bad.ratings.tolist(),
        }
    return out


def matching_calibration() -> list[list]:
    import numpy as np
    import polars as pl

    from dataplatform.core.synthesis.fineinstructions import SentenceTransformerEmbedder, TemplateIndex, load_templates

    path = REPO / "dataplatform" / "core" / "synthesis" / "templates" / "match_calibration.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    templates = load_templates()
    index = TemplateIndex(templates, SentenceTransformerEmbedder(num_threads=1))
    matches = index.search(
        pl.DataFrame({"doc_id": [r["doc_id"] for r in rows], "text": [r["text"] for r in rows]}), len(templates)
    )
    fits = {r["doc_id"]: set(r["fits"]) for r in rows}
    label = np.array([t in fits[d] for d, t in zip(matches["doc_id"], matches["template_id"])])
    score = matches["match_score"].to_numpy()
    top1 = matches.filter(pl.col("rank") == 0)
    accuracy = np.mean([t in fits[d] for d, t in zip(top1["doc_id"], top1["template_id"])])
    out = []
    for threshold in (0.2, 0.25, 0.3, 0.35, 0.4):
        above = score >= threshold
        out.append(
            [
                threshold,
                round(float((above & label).sum() / max(above.sum(), 1)), 3),
                round(float((above & label).sum() / label.sum()), 3),
                round(float(accuracy), 3),
            ]
        )
    return out


def membership() -> dict:
    from dataplatform.llm.membership_experiment import run_membership_experiment

    with tempfile.TemporaryDirectory() as tmp:
        trained = run_membership_experiment(Path(tmp) / "t", steps=40)
        control = run_membership_experiment(Path(tmp) / "c", steps=0)
    return {
        "trained": [
            round(trained.auc, 3),
            round(trained.auc_low, 3),
            round(trained.auc_high, 3),
            round(trained.true_positive_rate, 2),
        ],
        "control": [
            round(control.auc, 3),
            round(control.auc_low, 3),
            round(control.auc_high, 3),
            round(control.true_positive_rate, 2),
        ],
        "loss": [round(trained.first_loss, 2), round(trained.last_loss, 2)],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=8, help="documents per stage for the acceptance rates")
    parser.add_argument("--batch", type=int, default=4, help="prompts in the throughput batch")
    parser.add_argument("--max-tokens", type=int, default=128, help="new tokens in the throughput batch")
    parser.add_argument("--data-root", default=".dataplatform/demo", help="a finished `dataplatform demo` folder")
    parser.add_argument("--json", default=None, help="also write every number to this file")
    args = parser.parse_args()

    from dataplatform.resources.llm import LLMResource

    started = time.perf_counter()
    engine = LLMResource().engine()
    load_s = time.perf_counter() - started
    store = sample_store(args.data_root)
    texts = [
        t
        for t in __import__("polars").concat([store.read_frame("decontaminated", s) for s in store.partitions("decontaminated")])[
            "text"
        ]
    ]
    results = {
        "model": engine.model_id,
        "load_s": round(load_s, 1),
        "throughput": throughput(engine, texts, args.max_tokens, args.batch),
        "acceptance": acceptance(store, engine, args.docs),
        "judge": judge_discrimination(engine),
        "matching": matching_calibration(),
        "membership": membership(),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    t, a, m = results["throughput"], results["acceptance"], results["membership"]
    print(f"model {results['model']} (engine built in {results['load_s']} s), peak RSS {results['peak_rss_mb']} MB\n")
    print(
        table(
            ["path", "prompts", "new tokens", "seconds", "tokens/s"],
            [
                ["platform engine", t["prompts"], t["platform_tokens"], t["platform_s"], t["platform_tokens_per_s"]],
                ["bare model.generate (peer)", t["prompts"], t["bare_tokens"], t["bare_s"], t["bare_tokens_per_s"]],
                ["ratio platform / bare", "", "", "", t["ratio"]],
            ],
        )
    )
    print()
    print(
        table(
            ["stage", "in", "out", "rate", "failures"],
            [
                [
                    "REWIRE parsed (small profile)",
                    a["rewire_docs"],
                    a["rewire_parsed"],
                    round(a["rewire_parsed"] / max(a["rewire_docs"], 1), 2),
                    a["rewire_failures"],
                ],
                [
                    "REWIRE kept (top 10% by rank)",
                    a["rewire_parsed"],
                    a["rewire_kept_top10"],
                    round(a["rewire_kept_top10"] / max(a["rewire_parsed"], 1), 2),
                    "",
                ],
                [
                    "FineInstructions parsed",
                    a["pairs_attempts"],
                    a["pairs_parsed"],
                    round(a["pairs_parsed"] / max(a["pairs_attempts"], 1), 2),
                    a["pairs_failures"],
                ],
                [
                    "FineInstructions grounded (>= 0.8)",
                    a["pairs_parsed"],
                    a["pairs_grounded"],
                    round(a["pairs_grounded"] / max(a["pairs_parsed"], 1), 2),
                    "",
                ],
                [
                    "FineInstructions judged >= 4",
                    a["pairs_grounded"],
                    a["pairs_accepted"],
                    round(a["pairs_accepted"] / max(a["pairs_grounded"], 1), 2),
                    "",
                ],
            ],
        )
    )
    print(
        f"\nREWIRE: {a['rewire_tokens']} tokens in {a['rewire_s']} s = {a['rewire_tokens_per_s']} tokens/s; "
        f"FineInstructions: {a['pairs_docs']} documents in {a['pairs_s']} s\n"
    )
    print(
        table(
            [
                "judge prompt",
                "mean score, correct answers",
                "mean score, unrelated answers",
                "ratings correct",
                "ratings unrelated",
            ],
            [
                [k, v["correct_mean_score"], v["unrelated_mean_score"], v["correct_ratings"], v["unrelated_ratings"]]
                for k, v in results["judge"].items()
            ],
        )
    )
    print()
    print(table(["MiniLM threshold", "precision", "recall", "top-1 accuracy"], results["matching"]))
    print()
    print(
        table(
            ["Min-K% (k=20%)", "AUC", "95% CI low", "95% CI high", "TPR at 5% FPR"],
            [["trained 40 steps vs held-out", *m["trained"]], ["untrained control", *m["control"]]],
        )
    )
    print(f"\ntraining loss {m['loss'][0]} -> {m['loss'][1]}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
