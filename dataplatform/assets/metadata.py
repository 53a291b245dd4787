"""Stage reports -> Dagster materialization metadata the UI renders at a glance."""

from __future__ import annotations

from typing import Any

import dagster as dg
import pyarrow as pa

from dataplatform.stages.ingest import StageReport


def column_schema(schema: pa.Schema) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(f.name, str(f.type)) for f in schema])


def counts_table(counts: dict[str, int], total: int, label: str = "reason") -> str:
    if not counts:
        return f"_no {label}s_"
    lines = [f"| {label} | count | share |", "|---|---:|---:|"]
    for key, value in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"| `{key}` | {value} | {value / max(total, 1):.1%} |")
    return "\n".join(lines)


def report_metadata(report: StageReport, schema: pa.Schema, uri: str) -> dict[str, Any]:
    total = report.rows_in
    summary = (
        f"**{report.stage} / {report.partition}**: {report.rows_in} in -> {report.rows_out} kept, "
        f"{report.dropped} set aside ({report.dropped / max(total, 1):.1%}) in {report.wall_seconds:.1f}s "
        f"over {report.shards} shards."
    )
    metadata: dict[str, Any] = {
        "summary": dg.MetadataValue.md(summary),
        "dagster/row_count": report.rows_out,
        "dagster/column_schema": column_schema(schema),
        "dagster/uri": uri,
        "rows_in": report.rows_in,
        "rows_out": report.rows_out,
        "rows_dropped": report.dropped,
        "bytes_in": report.bytes_in,
        "bytes_out": report.bytes_out,
        "shards": report.shards,
        "wall_seconds": dg.MetadataValue.float(round(report.wall_seconds, 3)),
        "drop_reasons": dg.MetadataValue.md(counts_table(report.drop_counts, total)),
        "drop_counts": dg.MetadataValue.json(dict(sorted(report.drop_counts.items()))),
    }
    for key, value in report.extra.items():
        if key == "languages":
            metadata["languages"] = dg.MetadataValue.md(counts_table(value, report.rows_out, "language"))
            metadata["language_counts"] = dg.MetadataValue.json(value)
        elif isinstance(value, dict):
            metadata[key] = dg.MetadataValue.json(value)
        else:
            metadata[key] = value
    return metadata
