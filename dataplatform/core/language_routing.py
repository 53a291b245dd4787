"""Route documents by language before the (English) heuristic rules.

FineWeb (Penedo et al. 2024) keeps documents whose fastText language score for English is at
least 0.65; other languages are not deleted here but set aside as ``language:<code>`` so a
multilingual pipeline can pick them up from the ``dropped`` table.
"""

from __future__ import annotations

import dataclasses

import polars as pl


@dataclasses.dataclass(frozen=True)
class LanguageRouting:
    target_languages: tuple[str, ...] = ("en",)
    min_language_score: float = 0.65

    def __post_init__(self) -> None:
        if not self.target_languages:
            raise ValueError("LanguageRouting.target_languages must name at least one language")
        if not 0.0 <= self.min_language_score <= 1.0:
            raise ValueError(f"LanguageRouting.min_language_score must be in [0, 1], got {self.min_language_score}")

    def apply(self, df: pl.DataFrame) -> pl.DataFrame:
        """Fill ``drop_reason`` (where null) with ``language:<code>`` or ``language:low_confidence``."""
        in_target = pl.col("language").is_in(list(self.target_languages))
        reason = (
            pl.when(~in_target)
            .then(pl.lit("language:") + pl.col("language").fill_null("und"))
            .when(pl.col("language_score") < self.min_language_score)
            .then(pl.lit("language:low_confidence"))
        )
        return df.with_columns(pl.col("drop_reason").fill_null(reason))
