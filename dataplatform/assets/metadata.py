"""Stage reports -> Dagster materialization metadata the UI renders at a glance, and stage errors ->
``dg.Failure`` messages a person can act on."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import dagster as dg
import pyarrow as pa

from dataplatform import names
from dataplatform.io.datasets import CommitConflict, DatasetStore, IncompleteVersion, PartitionNotFound
from dataplatform.stages.runner import StageReport

# Tallies shown as tables (name -> label of their rows, and what their shares are relative to).
TALLY_TABLES = {"languages": "language", "rule_family_failures": "rule family", "contamination_hits": "benchmark"}
TALLY_COUNTS = {
    "languages": "language_counts",
    "rule_family_failures": "rule_family_failure_counts",
    "contamination_hits": "contamination_hit_counts",
}


def column_schema(schema: pa.Schema) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(f.name, str(f.type)) for f in schema])


def counts_table(counts: dict[str, int], total: int, label: str = "reason") -> str:
    if not counts:
        return f"_no {label}s_"
    lines = [f"| {label} | count | share |", "|---|---:|---:|"]
    for key, value in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"| `{key}` | {value} | {value / max(total, 1):.1%} |")
    return "\n".join(lines)


def examples_markdown(examples: dict[str, list[dict]]) -> str:
    lines = ["| reason | url | text (start) |", "|---|---|---|"]
    for reason in sorted(examples):
        for ex in examples[reason]:
            text = ex["text"].replace("|", "\\|")
            lines.append(f"| `{reason}` | {ex['url']} | {text} |")
    return "\n".join(lines)


def _summary(report: StageReport) -> str:
    total = max(report.rows_in, 1)
    routed = sum(report.routed.values())
    routed_text = f", {routed} routed to {', '.join(sorted(report.routed))}" if routed else ""
    resumed = f" ({report.tasks_resumed} resumed)" if report.tasks_resumed else ""
    return (
        f"**{report.stage} / {report.partition}**: {report.rows_in} in -> {report.rows_out} kept, "
        f"{report.dropped} set aside ({report.dropped / total:.1%}){routed_text} in {report.wall_seconds:.1f}s "
        f"over {report.shards} shards{resumed}."
    )


def report_metadata(report: StageReport, uri: str, schema: pa.Schema | None = None) -> dict[str, Any]:
    """Everything the report knows, with counts rendered as tables; ``schema`` adds the column schema."""
    metadata: dict[str, Any] = {
        "summary": dg.MetadataValue.md(_summary(report)),
        "dagster/row_count": report.rows_out,
        "dagster/uri": uri,
    }
    if schema is not None:
        metadata["dagster/column_schema"] = column_schema(schema)
    for key, value in report.as_metadata().items():
        if key in TALLY_TABLES:
            base = report.rows_out if key == "languages" else report.rows_in
            metadata[key] = dg.MetadataValue.md(counts_table(value, base, TALLY_TABLES[key]))
            metadata[TALLY_COUNTS[key]] = dg.MetadataValue.json(value)
        elif key == "drop_examples":
            metadata[key] = dg.MetadataValue.md(examples_markdown(value))
        elif isinstance(value, (dict, list)):
            metadata[key] = dg.MetadataValue.json(value)
        elif key == "wall_seconds":
            metadata[key] = dg.MetadataValue.float(value)
        else:
            metadata[key] = value
    metadata["drop_reasons"] = dg.MetadataValue.md(counts_table(report.drop_counts, report.rows_in))
    return metadata


@contextlib.contextmanager
def stage_failures(what: str, *config_errors: type[Exception]) -> Iterator[None]:
    """Turn errors a person must act on into ``dg.Failure`` with the message only: a concurrent commit,
    a missing upstream partition, and the given configuration errors (prefixed with ``what``)."""
    try:
        yield
    except (CommitConflict, IncompleteVersion, PartitionNotFound) as exc:
        raise dg.Failure(description=str(exc)) from exc
    except config_errors as exc:
        raise dg.Failure(description=f"{what}: {exc}") from exc


def corpus_model_missing(context: dg.AssetExecutionContext, store: DatasetStore, model_asset: str) -> bool:
    """True (and a warning in the run's log) when the cross-snapshot ``model_asset`` a per-snapshot asset
    needs is not committed yet. Such an asset is declared ``output_required=False`` and then yields
    nothing: on a new deployment the sensor's snapshot run succeeds with this step skipped (its checks
    and downstream steps too) instead of failing, and the asset stays unmaterialized for the snapshot
    until ``corpus_refresh`` (which trains every cross-snapshot model) has run and the asset is
    materialized again (backfill)."""
    if store.manifest(model_asset, names.UNPARTITIONED) is not None:
        return False
    asset = context.asset_key.to_user_string()
    context.log.warning(
        f"{asset} skipped for {context.partition_key}: {model_asset} is not materialized yet. "
        f"Run corpus_refresh to train it, then materialize {asset} for this snapshot."
    )
    return True
