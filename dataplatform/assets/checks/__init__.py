"""Every data-quality check of the graph, as ``@dg.asset_check`` functions that read the committed
datasets (see :mod:`dataplatform.assets.quality_gates` for how they run)."""

from dataplatform.assets.checks import dedup, eval, filtering, ingest, mix, selection, synthesis

ALL_CHECKS = [*ingest.CHECKS, *filtering.CHECKS, *dedup.CHECKS, *eval.CHECKS, *synthesis.CHECKS, *selection.CHECKS, *mix.CHECKS]

__all__ = ["ALL_CHECKS"]
