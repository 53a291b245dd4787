"""GPU synthesis assets: REWIRE ``rewritten``, FineInstructions ``instruction_templates`` and
``instruction_pairs``, and the Min-K% Prob ``contamination_audit``.

GPU assets join the ``gpu`` concurrency pool (limit it with ``dagster instance concurrency set
gpu <N>``) and carry the Kubernetes GPU request in their op tags, so they never oversubscribe a
node. On a laptop or in CI the same assets run through the CPU transformers backend.
"""

import dagster as dg
from pydantic import Field

from dataplatform.assets.eval import decontaminated, eval_benchmarks
from dataplatform.assets.filtering import quality_classifier, scored
from dataplatform.assets.metadata import report_metadata
from dataplatform.assets.partitions import OWNERS, crawl_snapshots, snapshot_of
from dataplatform.core.synthesis.fineinstructions import FineInstructionsConfig
from dataplatform.core.synthesis.rewire import RewireConfig
from dataplatform.llm import EngineUnavailable, SamplingConfig
from dataplatform.resources.llm import LLMResource
from dataplatform.resources.storage import DatasetStorageResource
from dataplatform.stages.synthesis import (
    INSTRUCTION_PAIRS_ASSET,
    REWRITTEN_ASSET,
    InstructionOptions,
    RewriteOptions,
    materialize_contamination_audit,
    materialize_instruction_pairs,
    materialize_instruction_templates,
    materialize_rewritten,
)

GPU_POOL = "gpu"
# Mirrors deploy/k8s/gpu_op_tags.yaml: one GPU per step pod under the k8s executor / run launcher.
GPU_OP_TAGS = {
    "dagster-k8s/config": {
        "container_config": {"resources": {"requests": {"cpu": "8", "memory": "64Gi", "nvidia.com/gpu": "1"},
                                           "limits": {"memory": "96Gi", "nvidia.com/gpu": "1"}}},
        "pod_spec_config": {"node_selector": {"dataplatform/node-pool": "gpu"},
                            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]},
    }
}
TEST_MODEL_MAX_TOKENS = 32
TEST_MODEL_MAX_DOC_CHARS = 1000


def _limits(context, llm: LLMResource, max_new_tokens: int, max_doc_chars: int) -> tuple[int, int]:
    if llm.is_test_model:
        context.log.warning("LLMResource has no model_path: using the tiny random test model, generation capped at "
                            f"{TEST_MODEL_MAX_TOKENS} tokens and {TEST_MODEL_MAX_DOC_CHARS} input characters")
        return min(max_new_tokens, TEST_MODEL_MAX_TOKENS), min(max_doc_chars, TEST_MODEL_MAX_DOC_CHARS)
    return max_new_tokens, max_doc_chars


def _engine(llm: LLMResource):
    try:
        return llm.engine()
    except EngineUnavailable as exc:
        raise dg.Failure(description=str(exc)) from exc
    except ImportError as exc:
        raise dg.Failure(description=f"the CPU LLM backend needs the llm extra ({exc.name} is missing): "
                                     "pip install torch==2.13.0 && pip install 'dataplatform[llm]'") from exc


class RewrittenConfig(dg.Config):
    max_new_tokens: int = Field(default=2048, gt=0, description="generation budget per document")
    max_doc_chars: int = Field(default=12_000, gt=0, description="source text given to the model")
    temperature: float = Field(default=0.0, ge=0, description="0 = greedy (resumes reproduce lost shards exactly)")
    min_quality_score: float | None = Field(default=None, description="keep rewrites scoring at least this; None = the snapshot's raw high-quality cut")
    unit_docs: int = Field(default=64, gt=0, description="documents per resumable work unit")


@dg.asset(partitions_def=crawl_snapshots, deps=[decontaminated, quality_classifier, scored], group_name="synthesis",
          kinds={"parquet", "vllm"}, owners=OWNERS, tags={"stage": "synthesis", "gpu": "true"}, pool=GPU_POOL, op_tags=GPU_OP_TAGS,
          description="REWIRE: documents below the quality cut rewritten by an LLM, re-scored, kept if they pass; source_doc_id kept.")
def rewritten(context: dg.AssetExecutionContext, config: RewrittenConfig, dataset_storage: DatasetStorageResource,
              llm: LLMResource) -> dg.MaterializeResult:
    snapshot = snapshot_of(context)
    store = dataset_storage.dataset_store()
    max_tokens, max_chars = _limits(context, llm, config.max_new_tokens, config.max_doc_chars)
    rewire = RewireConfig(max_doc_chars=max_chars, sampling=SamplingConfig(
        max_tokens=max_tokens, temperature=config.temperature, seed=llm.seed, stop=RewireConfig().sampling.stop))
    report = materialize_rewritten(store, snapshot, _engine(llm), RewriteOptions(rewire, config.unit_docs, config.min_quality_score))
    metadata = report_metadata(report, store.object_store.uri(f"{REWRITTEN_ASSET}/{snapshot}"))
    return dg.MaterializeResult(metadata=metadata)


class InstructionTemplatesConfig(dg.Config):
    extra_template_files: list[str] = Field(default=[], description="JSONL template files added to the bundled seed bank")


@dg.asset(group_name="synthesis", kinds={"json"}, owners=OWNERS, tags={"stage": "synthesis"},
          description="FineInstructions template bank: templates from real user queries with typed slots and what documents they fit.")
def instruction_templates(config: InstructionTemplatesConfig, dataset_storage: DatasetStorageResource) -> dg.MaterializeResult:
    extra = tuple(config.extra_template_files)
    try:
        info = materialize_instruction_templates(dataset_storage.dataset_store(), extra)
    except (FileNotFoundError, ValueError) as exc:
        raise dg.Failure(description=f"instruction_templates: {exc}") from exc
    return dg.MaterializeResult(metadata={"dagster/row_count": info["templates"], "extra_files": dg.MetadataValue.json(info["extra_files"])})


class InstructionPairsConfig(dg.Config):
    max_new_tokens: int = Field(default=1024, gt=0)
    max_doc_chars: int = Field(default=6000, gt=0)
    min_grounding: float = Field(default=0.8, ge=0, le=1, description="share of the answer quoted from the document (paper: >= 80%)")
    top_k: int = Field(default=1, gt=0, description="templates instantiated per document")
    embedder: str = Field(default="minilm", description="'minilm' (bundled all-MiniLM-L6-v2) or 'hashing' (no model)")
    unit_docs: int = Field(default=64, gt=0)


@dg.asset(partitions_def=crawl_snapshots, deps=[decontaminated, instruction_templates], group_name="synthesis",
          kinds={"parquet", "vllm"}, owners=OWNERS, tags={"stage": "synthesis", "gpu": "true"}, pool=GPU_POOL, op_tags=GPU_OP_TAGS,
          description="FineInstructions: instruction/answer pairs instantiated from matched templates, grounded in the source document.")
def instruction_pairs(context: dg.AssetExecutionContext, config: InstructionPairsConfig, dataset_storage: DatasetStorageResource,
                      llm: LLMResource) -> dg.MaterializeResult:
    from dataplatform.core.synthesis.fineinstructions import HashingEmbedder, SentenceTransformerEmbedder

    snapshot = snapshot_of(context)
    if config.embedder not in ("minilm", "hashing"):
        raise dg.Failure(description=f"InstructionPairsConfig.embedder must be 'minilm' or 'hashing', got {config.embedder!r}")
    store = dataset_storage.dataset_store()
    max_tokens, max_chars = _limits(context, llm, config.max_new_tokens, config.max_doc_chars)
    default = FineInstructionsConfig()
    fi = FineInstructionsConfig(top_k=config.top_k, max_doc_chars=max_chars, min_grounding=config.min_grounding,
                                sampling=SamplingConfig(max_tokens=max_tokens, seed=llm.seed, stop=default.sampling.stop))
    embedder = SentenceTransformerEmbedder() if config.embedder == "minilm" else HashingEmbedder()
    report = materialize_instruction_pairs(store, snapshot, _engine(llm), embedder, InstructionOptions(fi, config.unit_docs))
    metadata = report_metadata(report, store.object_store.uri(f"{INSTRUCTION_PAIRS_ASSET}/{snapshot}"))
    return dg.MaterializeResult(metadata=metadata)


class ContaminationAuditConfig(dg.Config):
    k: float = Field(default=0.2, gt=0, le=1, description="Min-K%: share of least likely tokens averaged (paper: 20%)")
    controls_path: str | None = Field(default=None, description="known-unseen texts, one per line; None = word-shuffled items")


@dg.asset(deps=[eval_benchmarks], group_name="eval", kinds={"vllm"}, owners=OWNERS, tags={"stage": "eval", "gpu": "true"},
          pool=GPU_POOL, op_tags=GPU_OP_TAGS,
          description="Min-K% Prob membership audit of benchmark items vs unseen controls under the reference model (AUC 0.5 = no signal).")
def contamination_audit(config: ContaminationAuditConfig, dataset_storage: DatasetStorageResource, llm: LLMResource) -> dg.MaterializeResult:
    info = materialize_contamination_audit(dataset_storage.dataset_store(), _engine(llm), config.k, config.controls_path)
    per = info["per_benchmark"]
    table = "| benchmark | AUC | mean Min-K% | controls |\n|---|---:|---:|---:|\n" + "\n".join(
        f"| {b} | {v['auc']} | {v['mean_min_k']} | {v['mean_min_k_controls']} |" for b, v in per.items())
    return dg.MaterializeResult(metadata={"per_benchmark": dg.MetadataValue.md(table), "model": info["model"], "k": info["k"],
                                          "auc": dg.MetadataValue.json({b: v["auc"] for b, v in per.items()}),
                                          "controls": info["controls"]})
