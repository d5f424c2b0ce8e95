"""Small helpers shared by the benchmarks: min/median/max of repeated runs, timing."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def summary(values: Sequence[float], digits: int = 4) -> dict:
    """``runs``, ``min``, ``median``, ``max`` of repeated measurements."""
    vals = list(values)
    if not vals:
        return {"runs": 0}
    return {"runs": len(vals), "min": round(min(vals), digits),
            "median": round(statistics.median(vals), digits), "max": round(max(vals), digits)}


def percentile(values: Sequence[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, int(round(pct / 100 * (len(ordered) - 1)))))
    return ordered[index]


def ratio(numerators: Sequence[float], denominators: Sequence[float]) -> dict:
    """Per-pair ratios of interleaved runs (pair i was measured back to back)."""
    return summary([n / d for n, d in zip(numerators, denominators, strict=True) if d])


def cell(summary: dict | None, unit: str = "") -> str:
    """A results.md cell: ``min / **median** / max`` (``n/a`` without a summary)."""
    if not summary or "median" not in summary:
        return "n/a"
    return f"{summary['min']:g} / **{summary['median']:g}** / {summary['max']:g}{unit}"


def met(value: bool | None) -> str:
    """A results.md "met" cell."""
    return "n/a" if value is None else ("yes" if value else "**no**")
