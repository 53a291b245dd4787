"""Synthesis assets: REWIRE (``rewire_outputs`` -> ``rewrite_classifier`` -> ``rewritten``),
FineInstructions (``instruction_templates``, ``instruction_pairs``) and the Min-K% Prob
``contamination_audit``.

LLM assets join the ``gpu`` concurrency pool (limit it with ``dagster instance concurrency set gpu
<N>``) and carry the Kubernetes GPU request in their op tags, so they never oversubscribe a node.
Without a GPU the same assets run on the CPU transformers backend with the bundled
SmolLM2-135M-Instruct. Settings left at ``None`` take the backend's default: the paper's values on
vLLM, and a budget a CPU can afford on the transformers backend (``dataplatform.resources.llm.CPU_BUDGET``; the 135M model
generates ~10-20 tokens/s on 2 cores), recorded in each materialization's metadata.
``prompt_profile="auto"`` picks the ``small_model`` prompts for the bundled 135M model and the
paper's prompts for any other model.
"""

from collections.abc import Iterator
from typing import Literal

import dagster as dg
from pydantic import Field

from dataplatform import names
from dataplatform.assets.eval import decontaminated, eval_benchmarks
from dataplatform.assets.filtering import scored
from dataplatform.assets.metadata import corpus_model_missing, report_metadata
from dataplatform.assets.partitions import OWNERS, crawl_snapshots, snapshot_of
from dataplatform.core.synthesis.fineinstructions import MINILM_MATCH_THRESHOLD, FineInstructionsConfig
from dataplatform.core.synthesis.rewire import RewireConfig
from dataplatform.llm import EngineUnavailable
from dataplatform.resources.llm import LLMResource
from dataplatform.resources.storage import DatasetStorageResource
from dataplatform.stages.synthesis import (
    INSTRUCTION_PAIRS_ASSET,
    REWIRE_OUTPUTS_ASSET,
    REWRITTEN_ASSET,
    AuditOptions,
    InstructionOptions,
    RewireOptions,
    RewriteClassifierOptions,
    materialize_contamination_audit,
    materialize_instruction_pairs,
    materialize_instruction_templates,
    materialize_rewire_outputs,
    materialize_rewrite_classifier,
    materialize_rewritten,
)

GPU_POOL = "gpu"
# Mirrors deploy/k8s/gpu_op_tags.yaml: one GPU per step pod under the k8s executor / run launcher.
GPU_OP_TAGS = {
    "dagster-k8s/config": {
        "container_config": {
            "resources": {
                "requests": {"cpu": "8", "memory": "64Gi", "nvidia.com/gpu": "1"},
                "limits": {"memory": "96Gi", "nvidia.com/gpu": "1"},
            }
        },
        "pod_spec_config": {
            "node_selector": {"dataplatform/node-pool": "gpu"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        },
    }
}
# Every GPU step takes both: the pool that serialises GPU steps and the pod's GPU request (a step in the
# pool without the request would be scheduled on a CPU node).
GPU_STEP = {"pool": GPU_POOL, "op_tags": GPU_OP_TAGS}
PromptProfile = Literal["auto", "paper", "small_model"]
# New tokens for instantiating a template: the paper profile writes instruction + answer, the
# small-model profile only the instruction.
PAIR_MAX_NEW_TOKENS = {"paper": 1024, "small_model": 48}


def _profile(llm: LLMResource, requested: str) -> str:
    if requested != "auto":
        return requested
    return "small_model" if llm.is_small_model() else "paper"


def _engine(llm: LLMResource):
    from dataplatform.llm.default_model import DefaultModelMissing

    try:
        return llm.engine()
    except (EngineUnavailable, DefaultModelMissing) as exc:
        raise dg.Failure(description=str(exc)) from exc
    except ImportError as exc:
        raise dg.Failure(
            description=f"the CPU LLM backend needs the llm extra ({exc.name} is missing): "
            "pip install torch==2.13.0 && pip install 'dataplatform[llm]'"
        ) from exc


def _examples_md(examples: list[dict]) -> dg.MetadataValue:
    if not examples:
        return dg.MetadataValue.md("_none_")
    columns = list(examples[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in examples:
        lines.append("| " + " | ".join(str(row[c]).replace("|", "/").replace("\n", " ") for c in columns) + " |")
    return dg.MetadataValue.md("\n".join(lines))


def _stage_metadata(report, asset: str, store) -> dict:
    metadata = report_metadata(report, store.object_store.uri(f"{asset}/{report.partition}"))
    if "examples" in report.extra:
        metadata["examples"] = _examples_md(report.extra["examples"])
    return metadata


# ------------------------------------------------------------------------------------ REWIRE
class RewireOutputsConfig(dg.Config):
    prompt_profile: PromptProfile = Field(
        default="auto", description="'paper' (rewire_v2), 'small_model' (rewire_small_v1) or 'auto' (by model)"
    )
    pool: Literal["filtered_and_deduplicated", "below_quality_cut", "rewrite_band"] = Field(
        default="filtered_and_deduplicated",
        description="documents to rewrite; the paper: every document that passed the filters and dedup",
    )
    max_docs: int | None = Field(
        default=None,
        ge=0,
        description="documents rewritten per snapshot, a stable sample of the pool; 0 = all; None = all on vLLM, 2 on CPU",
    )
    max_new_tokens: int | None = Field(
        default=None, gt=0, description="generation budget per document; None = 8192 (paper) on vLLM, 256 on CPU"
    )
    max_doc_chars: int | None = Field(
        default=None, gt=0, description="source text given to the model; None = 12000 on vLLM, 700 on CPU"
    )
    temperature: float | None = Field(default=None, ge=0, description="None = the profile's: 1.0 (paper), 0.7 (small_model)")
    top_p: float | None = Field(default=None, gt=0, le=1, description="None = 0.9 (paper)")
    unit_docs: int = Field(default=64, gt=0, description="documents per resumable work unit")


@dg.asset(
    partitions_def=crawl_snapshots,
    deps=[decontaminated, scored, dg.AssetKey(names.DEDUPLICATED), dg.AssetKey(names.SIGNATURE_INDEX), eval_benchmarks],
    group_name="synthesis",
    kinds={"parquet", "vllm"},
    owners=OWNERS,
    tags={"stage": "synthesis", "gpu": "true"},
    **GPU_STEP,
    description="REWIRE step 1: every filtered, deduplicated document rewritten by the LLM (purpose, reasoning, improved version); failures with reasons.",
)
def rewire_outputs(
    context: dg.AssetExecutionContext, config: RewireOutputsConfig, dataset_storage: DatasetStorageResource, llm: LLMResource
) -> dg.MaterializeResult:
    snapshot = snapshot_of(context)
    store = dataset_storage.dataset_store()
    profile = _profile(llm, config.prompt_profile)
    rewire = RewireConfig.for_profile(
        profile,
        max_tokens=llm.budget("rewire_max_new_tokens", config.max_new_tokens),
        max_doc_chars=llm.budget("rewire_max_doc_chars", config.max_doc_chars),
        seed=llm.seed,
        temperature=config.temperature,
        top_p=config.top_p,
    )
    options = RewireOptions(rewire, config.pool, llm.budget("rewire_max_docs", config.max_docs), config.unit_docs)
    report = materialize_rewire_outputs(store, snapshot, _engine(llm), options)
    return dg.MaterializeResult(metadata={**_stage_metadata(report, REWIRE_OUTPUTS_ASSET, store), "prompt_profile": profile})


class RewriteClassifierConfig(dg.Config):
    positives_path: str | None = Field(
        default=None, description="high-quality reference text, one document per line; None = the bundled reference set"
    )
    max_negatives: int = Field(default=20_000, gt=0, description="random rewrites used as negatives")
    seed: int = 0


@dg.asset(
    deps=[rewire_outputs],
    group_name="synthesis",
    kinds={"fasttext"},
    owners=OWNERS,
    tags={"stage": "synthesis"},
    description="REWIRE step 2: fastText classifier of rewrite quality, reference text (positives) vs random rewrites (negatives).",
)
def rewrite_classifier(config: RewriteClassifierConfig, dataset_storage: DatasetStorageResource) -> dg.MaterializeResult:
    try:
        info = materialize_rewrite_classifier(
            dataset_storage.dataset_store(), RewriteClassifierOptions(config.positives_path, config.max_negatives, config.seed)
        )
    except (FileNotFoundError, ValueError) as exc:
        raise dg.Failure(description=f"rewrite_classifier: {exc}") from exc
    metrics = info["metrics"]
    return dg.MaterializeResult(
        metadata={
            "model_file": info["model_file"],
            "positives": info["positives"],
            "negatives": info["negatives"],
            "heldout_auc": metrics.get("roc_auc"),
            "metrics": dg.MetadataValue.json(metrics),
            "snapshots": dg.MetadataValue.json(info["snapshots"]),
        }
    )


class RewrittenConfig(dg.Config):
    keep_fraction: float = Field(
        default=0.10, gt=0, le=1, description="share of rewrites kept, by rank of the rewrite classifier (paper: top 10%)"
    )


@dg.asset(
    partitions_def=crawl_snapshots,
    deps=[rewire_outputs, rewrite_classifier],
    group_name="synthesis",
    kinds={"parquet"},
    owners=OWNERS,
    tags={"stage": "synthesis"},
    description="REWIRE step 3: the rewrites ranked by the rewrite classifier, top 10% kept; source_doc_id kept. "
    "Skipped (not failed) while rewrite_classifier is not materialized.",
    output_required=False,
)
def rewritten(
    context: dg.AssetExecutionContext, config: RewrittenConfig, dataset_storage: DatasetStorageResource
) -> Iterator[dg.MaterializeResult]:
    from dataplatform.io.datasets import PartitionNotFound

    store = dataset_storage.dataset_store()
    if corpus_model_missing(context, store, names.REWRITE_CLASSIFIER):
        return
    try:
        report = materialize_rewritten(store, snapshot_of(context), config.keep_fraction)
    except PartitionNotFound as exc:
        raise dg.Failure(
            description=f"rewritten: {exc}; materialize rewire_outputs for the snapshot, then rewrite_classifier "
            "(corpus_refresh job)"
        ) from exc
    yield dg.MaterializeResult(metadata=_stage_metadata(report, REWRITTEN_ASSET, store))


# ---------------------------------------------------------------------------- FineInstructions
class InstructionTemplatesConfig(dg.Config):
    extra_template_files: list[str] = Field(default=[], description="JSONL template files added to the bundled seed bank")
    query_log_files: list[str] = Field(
        default=[], description="JSONL user query logs ({'query': ...} per line) the LLM turns into templates"
    )
    prompt_profile: PromptProfile = Field(
        default="auto", description="how the LLM makes templates: 'paper', 'small_model' or 'auto'"
    )


@dg.asset(
    group_name="synthesis",
    kinds={"json"},
    owners=OWNERS,
    tags={"stage": "synthesis", "gpu": "true"},
    **GPU_STEP,
    description="FineInstructions template bank: seed templates, your files and templates the LLM made from user query logs.",
)
def instruction_templates(
    config: InstructionTemplatesConfig, dataset_storage: DatasetStorageResource, llm: LLMResource
) -> dg.MaterializeResult:
    from dataplatform.core.synthesis.fineinstructions import TemplateError

    logs = tuple(config.query_log_files)
    try:
        info = materialize_instruction_templates(
            dataset_storage.dataset_store(),
            tuple(config.extra_template_files),
            logs,
            _engine(llm) if logs else None,
            _profile(llm, config.prompt_profile),
        )
    except (FileNotFoundError, TemplateError) as exc:
        raise dg.Failure(description=f"instruction_templates: {exc}") from exc
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": info["templates"],
            "seed_templates": info["seed_templates"],
            "file_templates": info["file_templates"],
            "query_templates": info["query_templates"],
            "queries": info["queries"],
            "query_failures": dg.MetadataValue.json(info["query_failures"]),
            "examples": _examples_md(info["examples"]),
            "extra_files": dg.MetadataValue.json(info["extra_files"]),
            "query_logs": dg.MetadataValue.json(info["query_logs"]),
        }
    )


class InstructionPairsConfig(dg.Config):
    prompt_profile: PromptProfile = Field(
        default="auto", description="'paper' (fineinstructions_v2 + judge_v1), 'small_model' or 'auto'"
    )
    max_docs: int | None = Field(
        default=None, ge=0, description="matched documents instantiated per snapshot; 0 = all; None = all on vLLM, 4 on CPU"
    )
    max_new_tokens: int | None = Field(
        default=None, gt=0, description="None = 1024 (paper profile) / 48 (small_model: the instruction only)"
    )
    max_doc_chars: int | None = Field(
        default=None, gt=0, description="document text given to the model; None = 6000 on vLLM, 1000 on CPU"
    )
    top_k: int = Field(default=3, gt=0, description="templates instantiated per document, at most (paper: several per document)")
    min_match_score: float = Field(
        default=MINILM_MATCH_THRESHOLD,
        ge=-1,
        le=1,
        description="cosine threshold (paper: 0.865 with its BGE-M3; 0.30 calibrated for all-MiniLM-L6-v2)",
    )
    min_grounding: float = Field(
        default=0.8, ge=0, le=1, description="share of the answer quoted from the document (paper: >= 80%)"
    )
    judge: bool = Field(default=True, description="rate pairs 1-5 with the LLM judge")
    min_judge_rating: int = Field(default=4, ge=1, le=5, description="keep pairs the judge rates at least this (paper: 4)")
    embedder: Literal["minilm", "hashing"] = Field(
        default="minilm", description="'minilm' (bundled all-MiniLM-L6-v2) or 'hashing' (no model)"
    )
    unit_docs: int = Field(default=64, gt=0)


@dg.asset(
    partitions_def=crawl_snapshots,
    deps=[decontaminated, instruction_templates],
    group_name="synthesis",
    kinds={"parquet", "vllm"},
    owners=OWNERS,
    tags={"stage": "synthesis", "gpu": "true"},
    **GPU_STEP,
    description="FineInstructions: matched templates instantiated by the LLM, kept when quoted from the document and rated >= 4 by the judge.",
)
def instruction_pairs(
    context: dg.AssetExecutionContext, config: InstructionPairsConfig, dataset_storage: DatasetStorageResource, llm: LLMResource
) -> dg.MaterializeResult:
    from dataplatform.core.synthesis.fineinstructions import HashingEmbedder, SentenceTransformerEmbedder

    snapshot = snapshot_of(context)
    store = dataset_storage.dataset_store()
    profile = _profile(llm, config.prompt_profile)
    fi = FineInstructionsConfig.for_profile(
        profile,
        max_tokens=config.max_new_tokens or PAIR_MAX_NEW_TOKENS[profile],
        seed=llm.seed,
        judge=config.judge,
        top_k=config.top_k,
        min_match_score=config.min_match_score,
        max_doc_chars=llm.budget("pairs_max_doc_chars", config.max_doc_chars),
        min_grounding=config.min_grounding,
        min_judge_rating=config.min_judge_rating,
    )
    embedder = (
        SentenceTransformerEmbedder(num_threads=llm.cpu_threads or None) if config.embedder == "minilm" else HashingEmbedder()
    )
    options = InstructionOptions(fi, llm.budget("pairs_max_docs", config.max_docs), config.unit_docs)
    report = materialize_instruction_pairs(store, snapshot, _engine(llm), embedder, options)
    return dg.MaterializeResult(metadata={**_stage_metadata(report, INSTRUCTION_PAIRS_ASSET, store), "prompt_profile": profile})


# ------------------------------------------------------------------------------------ Min-K% Prob
class ContaminationAuditConfig(dg.Config):
    k: float = Field(default=0.2, gt=0, le=1, description="Min-K%: share of least likely tokens averaged (paper: 20%)")
    members_path: str | None = Field(
        default=None, description="texts the reference model was trained on, one per line (with non_members_path)"
    )
    non_members_path: str | None = Field(
        default=None, description="texts it cannot have seen, one per line; None = the default temporal sets"
    )
    max_texts: int | None = Field(
        default=None, ge=0, description="texts scored per set and per benchmark; 0 = all; None = 200 on vLLM, 24 on CPU"
    )
    max_chars: int | None = Field(default=None, gt=0, description="characters scored per text; None = 2000 on vLLM, 600 on CPU")
    false_positive_rate: float = Field(
        default=0.05, gt=0, lt=1, description="share of non-members above the calibrated threshold"
    )
    n_resamples: int = Field(default=1000, gt=0, description="bootstrap resamples of the AUC confidence interval")


@dg.asset(
    deps=[eval_benchmarks, decontaminated, "eval_splits"],
    group_name="eval",
    kinds={"vllm"},
    owners=OWNERS,
    tags={"stage": "eval", "gpu": "true"},
    **GPU_STEP,
    description="Min-K% Prob membership audit: calibrated on known members vs natural non-members (AUC with CI), then benchmark items flagged.",
)
def contamination_audit(
    config: ContaminationAuditConfig, dataset_storage: DatasetStorageResource, llm: LLMResource
) -> dg.MaterializeResult:
    options = AuditOptions(
        config.k,
        config.members_path,
        config.non_members_path,
        llm.budget("audit_max_texts", config.max_texts),
        llm.budget("audit_max_chars", config.max_chars) or 2000,
        config.false_positive_rate,
        config.n_resamples,
        llm.seed,
    )
    try:
        info = materialize_contamination_audit(dataset_storage.dataset_store(), _engine(llm), options)
    except (FileNotFoundError, ValueError) as exc:
        raise dg.Failure(description=f"ContaminationAuditConfig: {exc}") from exc
    per = info["per_benchmark"]
    verdict = {
        "calibrated": "the reference model separates members from non-members: flags are evidence of membership",
        "no_membership_signal": "no membership signal on the calibration sets (AUC interval includes 0.5): flags mean nothing",
        "not_calibrated": "no member/non-member sets: scores only",
    }[info["status"]]
    table = (
        f"**{info['status']}**: {verdict}\n\n| benchmark | items | mean Min-K% | flagged | expected false flags |\n|---|---:|---:|---:|---:|\n"
        + "\n".join(
            f"| {b} | {v['items']} | {v['mean_min_k']} | {v['flagged']} | {v['expected_false_flags']} |" for b, v in per.items()
        )
    )
    return dg.MaterializeResult(
        metadata={
            "status": info["status"],
            "membership_sets": info["membership_sets"],
            "members": info["members"],
            "non_members": info["non_members"],
            "auc": info.get("auc"),
            "auc_ci": dg.MetadataValue.json(info.get("auc_ci")),
            "threshold": info.get("threshold"),
            "true_positive_rate": info.get("true_positive_rate"),
            "per_benchmark": dg.MetadataValue.md(table),
            "model": info["model"],
            "k": info["k"],
        }
    )
