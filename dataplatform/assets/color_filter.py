"""CoLoR-Filter assets (Brandfonbrener et al. 2024): the conditional model (the LLM resource's model
fine-tuned on a target set, unpartitioned) and ``color_scores`` per snapshot, whose top fraction
the training mix can take as its own source (``color_selected``)."""

from collections.abc import Iterator

import dagster as dg
from pydantic import Field

from dataplatform import names
from dataplatform.assets.metadata import corpus_model_missing, report_metadata, stage_failures
from dataplatform.assets.partitions import OWNERS, crawl_snapshots, snapshot_of
from dataplatform.assets.synthesis import GPU_STEP
from dataplatform.core.color_filter import FineTuneConfig
from dataplatform.llm import EngineUnavailable
from dataplatform.resources.llm import LLMResource
from dataplatform.resources.storage import DatasetStorageResource
from dataplatform.stages.color_filter import (
    COLOR_SCORES_SCHEMA,
    ColorScoringOptions,
    ConditionalModelOptions,
    EngineSpec,
    materialize_color_conditional_model,
    materialize_color_scores,
)

color_target_files = dg.AssetSpec(
    names.COLOR_TARGET_FILES,
    description="Target set for CoLoR-Filter: text of the domain or tasks to select pre-training data for.",
    group_name="color_filter",
    kinds={"text"},
    owners=OWNERS,
)


class ColorConditionalModelConfig(dg.Config):
    target_path: str = Field(
        default="",
        description="folder or file of target text (.txt: documents separated by blank "
        "lines; .jsonl: field 'text'); '' = the bundled science-explanations target",
    )
    base_model: str = Field(
        default="", description="Hugging Face folder or .gguf file of the prior; '' = the LLM resource's model"
    )
    epochs: int = Field(default=2, gt=0, description="passes over the target set")
    max_steps: int | None = Field(
        default=None,
        ge=0,
        description="cap on optimizer steps (None: the epochs decide on a GPU, 2 on the CPU backend; 0: no cap)",
    )
    lr: float = Field(default=1e-4, gt=0, description="AdamW learning rate (constant)")
    batch_size: int = Field(default=8, gt=0)
    max_seq_tokens: int | None = Field(
        default=None,
        gt=1,
        description="target documents are cut into windows of this many tokens (None: 256 on a GPU, 128 on the CPU backend)",
    )
    seed: int = 0


def _base_model(config_value: str, llm: LLMResource) -> str | None:
    """The configured base, else the LLM resource's model (the project's one LLM setting); None = the
    bundled SmolLM2-135M, the resource's default too."""
    return config_value or llm.model_path or None


@dg.asset(
    deps=[color_target_files],
    group_name="color_filter",
    kinds={"pytorch"},
    owners=OWNERS,
    tags={"stage": "color_filter"},
    description="CoLoR-Filter conditional model: the prior fine-tuned on the target set, versioned by its training hash.",
)
def color_conditional_model(
    context: dg.AssetExecutionContext,
    config: ColorConditionalModelConfig,
    dataset_storage: DatasetStorageResource,
    llm: LLMResource,
) -> dg.MaterializeResult:
    store = dataset_storage.dataset_store()
    fine_tune = FineTuneConfig(
        epochs=config.epochs,
        max_steps=llm.budget("color_max_steps", config.max_steps),
        lr=config.lr,
        batch_size=config.batch_size,
        seed=config.seed,
        max_seq_tokens=llm.budget("color_max_seq_tokens", config.max_seq_tokens),
    )
    options = ConditionalModelOptions(_base_model(config.base_model, llm), config.target_path or None, fine_tune)
    with stage_failures("ColorConditionalModelConfig", FileNotFoundError, ValueError):
        report = materialize_color_conditional_model(store, options, progress=context.log.info)
    info = report.extra
    result = info["result"]
    summary = (
        f"**{info['base_model']}** fine-tuned on {info['target_documents']} target documents ({info['target']}): "
        f"{result['steps']} steps, target loss {result['target_loss_before']:.3f} -> {result['target_loss_after']:.3f}."
    )
    return dg.MaterializeResult(
        metadata={
            "summary": dg.MetadataValue.md(summary),
            "training_hash": info["training_hash"],
            "base_model": info["base_model"],
            "base_model_sha256": info["base_model_sha256"],
            "target_documents": info["target_documents"],
            "fine_tune": dg.MetadataValue.json(info["fine_tune"]),
            "result": dg.MetadataValue.json(result),
            "model_files": dg.MetadataValue.json(info["model_files"]),
        }
    )


class ColorScoresConfig(dg.Config):
    top_fraction: float = Field(default=0.10, gt=0, le=1, description="share of the snapshot's candidates selected")
    max_tokens: int | None = Field(
        default=None,
        gt=0,
        description="tokens of each document scored under both models (None: 512 on a GPU, 32 on the CPU backend)",
    )
    unit_docs: int = Field(default=256, gt=0, description="documents per resumable work unit")


def engine_spec(llm: LLMResource) -> EngineSpec:
    """The LLM resource's backend settings, for engines built on the prior and conditional folders."""
    if llm.backend == "vllm":
        settings = {
            "tensor_parallel_size": llm.tensor_parallel_size,
            "gpu_memory_utilization": llm.gpu_memory_utilization,
            "dtype": llm.dtype,
            "seed": llm.seed,
        }
    else:
        settings = {"max_batch_size": llm.max_batch_size, "dtype": "float32"}
    if llm.max_model_len:
        settings["max_model_len"] = llm.max_model_len
    return EngineSpec(llm.backend, tuple(sorted(settings.items())))


@dg.asset(
    partitions_def=crawl_snapshots,
    deps=[dg.AssetKey(names.DECONTAMINATED), color_conditional_model],
    group_name="color_filter",
    kinds={"parquet", "vllm"},
    owners=OWNERS,
    tags={"stage": "color_filter", "gpu": "true"},
    **GPU_STEP,
    description="CoLoR-Filter: loss under the prior minus loss under the conditional model; top fraction in `data`. "
    "Skipped (not failed) while color_conditional_model is not materialized.",
    output_required=False,
)
def color_scores(
    context: dg.AssetExecutionContext, config: ColorScoresConfig, dataset_storage: DatasetStorageResource, llm: LLMResource
) -> Iterator[dg.MaterializeResult]:
    snapshot = snapshot_of(context)
    store = dataset_storage.dataset_store()
    if corpus_model_missing(context, store, names.COLOR_CONDITIONAL_MODEL):
        return
    options = ColorScoringOptions(
        top_fraction=config.top_fraction,
        max_tokens=llm.budget("color_max_tokens", config.max_tokens),
        unit_docs=config.unit_docs,
        engine=engine_spec(llm),
    )
    try:
        with stage_failures("ColorScoresConfig", FileNotFoundError, ValueError):
            report = materialize_color_scores(store, snapshot, options, progress=context.log.info)
    except EngineUnavailable as exc:
        raise dg.Failure(description=str(exc)) from exc
    metadata = report_metadata(report, store.object_store.uri(f"{names.COLOR_SCORES}/{snapshot}"), COLOR_SCORES_SCHEMA)
    yield dg.MaterializeResult(metadata=metadata)
