"""Benchmark: REWIRE through the platform path vs a bare ``vllm.LLM.generate`` loop.

Goal: the platform's overhead over bare vLLM is < 10% of generation throughput.

Both paths share one ``vllm.LLM`` (loaded once by ``VLLMEngine``) and the same prompts and greedy
sampling, so they generate the same tokens; only what is around ``LLM.generate`` differs:

* ``bare``: the REWIRE prompts are built, chat-rendered and tokenized beforehand (untimed); the
  timed region is ``llm.generate(token_id_prompts, SamplingParams(...))`` and summing the output
  token counts.
* ``platform``: ``rewrite_documents(df, VLLMEngine, RewireConfig)`` timed end to end: prompt
  building from the documents, chat rendering, tokenization on our side (to turn over-long
  prompts into data instead of a batch-killing exception), ``LLM.generate`` on token ids, and
  parsing every output into the rewritten / failures frames.

Prefix caching is off by default so that the second path does not profit from the first one's
KV cache (the prompts are identical); ``--prefix-caching`` turns it on for both. The paths run
alternately ``--runs`` times after a warm-up; the median is reported.

Reported: generated tokens/s of each path, overhead % (1 - platform/bare), GPU memory in use
(peak over the run, from NVML, whole device) and peak host RSS of this process.

Model: ``--model PATH`` (a local Hugging Face directory or a hub id already in the local cache);
without it a tiny random Llama is built locally with ``dataplatform.llm.tiny_model`` (its
numbers show framework overhead only; it writes gibberish, so all outputs are "failures").

Documents: ``--docs file.parquet`` (a ``text`` column), else ``benchmarks/_data/corpus.parquet``
when present, else the project's packaged quality reference paragraphs; tiled to ``--n-docs``.

Run on a GPU machine:  python benchmarks/bench_vllm_overhead.py [--model PATH] [--n-docs 512]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
sys.path.insert(0, str(REPO))


def fail(msg: str, code: int = 2) -> None:
    print(f"bench_vllm_overhead: {msg}", file=sys.stderr)
    sys.exit(code)


def check_environment() -> None:
    import importlib.util

    missing = []
    if importlib.util.find_spec("vllm") is None:
        missing.append("vllm is not installed (pip install .[gpu])")
    try:
        import torch

        if not torch.cuda.is_available():
            missing.append(f"no CUDA GPU is visible (torch {torch.__version__})")
    except ImportError:
        missing.append("torch is not installed")
    if missing:
        fail("needs a CUDA GPU with vLLM: " + "; ".join(missing) + ". Nothing was measured.")


def load_documents(path: str | None, n_docs: int, doc_chars: int) -> list[str]:
    import polars as pl

    texts: list[str] = []
    if path:
        texts = pl.read_parquet(path, columns=["text"])["text"].drop_nulls().to_list()
    elif (ROOT / "_data" / "corpus.parquet").exists():
        texts = pl.read_parquet(ROOT / "_data" / "corpus.parquet", columns=["text"])["text"].drop_nulls().to_list()
    if not texts:
        ref = REPO / "dataplatform" / "core" / "quality_reference" / "positives.txt"
        texts = [ln for ln in ref.read_text(encoding="utf-8").splitlines() if ln.strip() and not ln.startswith("#")]
    texts = [t[:doc_chars] for t in texts if len(t.split()) >= 20]
    if not texts:
        fail("no documents with at least 20 words")
    return [texts[i % len(texts)] + ("" if i < len(texts) else f"\n(copy {i // len(texts)})") for i in range(n_docs)]


def tiny_model(directory: Path, texts: list[str]) -> str:
    from dataplatform.core.synthesis.common import load_prompt
    from dataplatform.llm.tiny_model import build_tiny_causal_lm

    build_tiny_causal_lm(
        directory, texts[:500] + [load_prompt("rewire_v1")], seed=0, vocab_size=2000, max_position_embeddings=4096
    )
    return str(directory)


class GpuMemoryPeak:
    """Polls NVML (device-wide used memory) in a thread; no CUDA context in this process."""

    def __init__(self, interval: float = 0.05) -> None:
        self.peak = 0
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
            index = int((os.environ.get("CUDA_VISIBLE_DEVICES") or "0").split(",")[0] or 0)
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        except Exception:  # noqa: BLE001 - memory reporting is best effort
            self._nvml = None

    def sample(self) -> int:
        if self._nvml is None:
            return 0
        used = int(self._nvml.nvmlDeviceGetMemoryInfo(self._handle).used)
        self.peak = max(self.peak, used)
        return used

    def __enter__(self):
        def loop():
            while not self._stop.is_set():
                self.sample()
                time.sleep(self.interval)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread:
            self._thread.join()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="local model directory or cached hub id (default: build a tiny random model)")
    ap.add_argument("--docs", help="parquet file with a 'text' column")
    ap.add_argument("--n-docs", type=int, default=512)
    ap.add_argument("--doc-chars", type=int, default=3000)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--max-model-len", type=int, default=4096)
    ap.add_argument("--gpu-memory-utilization", type=float, default=0.85)
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--tensor-parallel-size", type=int, default=1)
    ap.add_argument("--prefix-caching", action="store_true")
    ap.add_argument("--ignore-eos", action="store_true", help="always generate max_tokens (fixed work per prompt)")
    ap.add_argument("--json-out", help="write the results as JSON here")
    args = ap.parse_args()

    check_environment()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never download at run time

    import polars as pl

    from dataplatform.core.synthesis.rewire import END_MARKER, RewireConfig, build_rewire_prompts, rewrite_documents
    from dataplatform.llm.engine import SamplingConfig, VLLMEngine

    texts = load_documents(args.docs, args.n_docs, args.doc_chars)
    tmp = tempfile.TemporaryDirectory(prefix="bench_vllm_")
    model = args.model or tiny_model(Path(tmp.name) / "tiny", texts)
    print(f"model: {model}{'' if args.model else ' (tiny random model built locally)'}; {len(texts)} documents")

    mem = GpuMemoryPeak()
    with mem:
        t0 = time.perf_counter()
        engine = VLLMEngine(
            model,
            tensor_parallel_size=args.tensor_parallel_size,
            gpu_memory_utilization=args.gpu_memory_utilization,
            max_model_len=args.max_model_len,
            dtype=args.dtype,
            seed=0,
            enable_prefix_caching=args.prefix_caching,
            sampling_overrides={"ignore_eos": True} if args.ignore_eos else None,
        )
        load_s = time.perf_counter() - t0
        import vllm

        sampling = SamplingConfig(max_tokens=args.max_tokens, temperature=0.0, stop=(END_MARKER,))
        config = RewireConfig(sampling=sampling, max_doc_chars=args.doc_chars)
        df = pl.DataFrame({"doc_id": [f"doc-{i:06d}" for i in range(len(texts))], "text": texts})
        # The bare path gets its prompts as token ids prepared outside the timed region (the
        # strictest baseline; also avoids vLLM adding a second BOS to chat-rendered text).
        prompt_ids = engine.encode_prompts(build_rewire_prompts(texts, config.max_doc_chars, config.prompt_version))
        bare_prompts = [{"prompt_token_ids": ids} for ids in prompt_ids]
        bare_params = vllm.SamplingParams(
            max_tokens=args.max_tokens, temperature=0.0, stop=[END_MARKER], ignore_eos=args.ignore_eos
        )

        def run_bare() -> tuple[float, int]:
            t = time.perf_counter()
            outs = engine.llm.generate(bare_prompts, bare_params, use_tqdm=False)
            n = sum(len(o.outputs[0].token_ids) for o in outs)
            return time.perf_counter() - t, n

        def run_platform() -> tuple[float, int, int]:
            t = time.perf_counter()
            ok, failed = rewrite_documents(df, engine, config)
            elapsed = time.perf_counter() - t
            n = int(ok["n_generated_tokens"].sum() or 0) + int(failed["n_generated_tokens"].sum() or 0)
            return elapsed, n, ok.height

        # warm-up (CUDA graphs, allocator) on a slice
        engine.llm.generate(bare_prompts[:32], bare_params, use_tqdm=False)
        bare, plat = [], []
        n_bare = n_plat = n_ok = 0
        for _ in range(args.runs):
            s, n_bare = run_bare()
            bare.append(s)
            s, n_plat, n_ok = run_platform()
            plat.append(s)
        peak_gpu = mem.peak

    bare_s, plat_s = statistics.median(bare), statistics.median(plat)
    bare_tps, plat_tps = n_bare / bare_s, n_plat / plat_s
    overhead = 1.0 - plat_tps / bare_tps
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    result = {
        "model": model if args.model else "tiny-random-llama (local)",
        "n_docs": len(texts),
        "max_tokens": args.max_tokens,
        "runs": args.runs,
        "prefix_caching": args.prefix_caching,
        "load_s": round(load_s, 2),
        "bare": {
            "median_s": round(bare_s, 3),
            "generated_tokens": n_bare,
            "tokens_per_s": round(bare_tps, 1),
            "runs_s": [round(x, 3) for x in bare],
        },
        "platform": {
            "median_s": round(plat_s, 3),
            "generated_tokens": n_plat,
            "tokens_per_s": round(plat_tps, 1),
            "runs_s": [round(x, 3) for x in plat],
            "rewritten_ok": n_ok,
        },
        "overhead_pct": round(100 * overhead, 2),
        "goal_overhead_pct": 10.0,
        "same_tokens": n_bare == n_plat,
        "peak_gpu_memory_used_mib": round(peak_gpu / 2**20, 1) if peak_gpu else None,
        "peak_host_rss_mib": round(rss_mb, 1),
        "peak_child_rss_mib": round(child_rss_mb, 1),
        "vllm": getattr(vllm, "__version__", "?"),
        "python": platform.python_version(),
    }
    print(
        f"bare      : {bare_tps:10.1f} tok/s  ({n_bare} tokens, median {bare_s:.3f}s)\n"
        f"platform  : {plat_tps:10.1f} tok/s  ({n_plat} tokens, median {plat_s:.3f}s, {n_ok} usable rewrites)\n"
        f"overhead  : {100 * overhead:.2f}%  (goal < 10%){'' if n_bare == n_plat else '  [token counts differ]'}\n"
        f"peak GPU memory used: {result['peak_gpu_memory_used_mib']} MiB; peak host RSS: {rss_mb:.0f} MiB (children {child_rss_mb:.0f} MiB)"
    )
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2))
    engine.close()
    tmp.cleanup()


if __name__ == "__main__":
    main()
