"""Scenario "reconcile": seconds and peak RSS at two sizes, each in a fresh process.

The measurement itself is ``benchmarks.reconcile_scale.run(keys)`` (written
with the reconcile engine). Until that module is on this branch the scenario is
skipped with the reason; ``python -m benchmarks.reconcile KEYS`` is the child.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from benchmarks.common import Result, Row, fmt_ratio, run_child
from sync.service.logging import configure

TIME_RATIO_LIMIT = 12.0
RSS_LIMIT_MB = 300.0


def _seconds(figures: dict[str, Any]) -> float:
    """The reconcile time of one run: its dry run plus its apply run."""
    if "seconds" in figures:
        return float(figures["seconds"])
    return float(figures.get("dry_run_s", 0.0)) + float(figures.get("apply_s", 0.0))


def reconcile(small: int, large: int) -> Result:
    result = Result(
        "reconcile", f"Reconcile scale: {small:,} and {large:,} keys, memory connectors"
    )
    a = run_child("benchmarks.reconcile", [str(small)], 3600)
    b = run_child("benchmarks.reconcile", [str(large)], 3600)
    sa, sb = _seconds(a), _seconds(b)
    result.figures = {"small": a, "large": b}
    for figures in (a, b):
        # the injected differences: CRM edited, ERP drift, a key missing in the CRM, and an
        # orphan CRM record, which the default policy reports and leaves (so one remains)
        result.check(
            f"{figures['keys']:,} keys: the injected differences found",
            figures.get("findings", 1) > 0,
        )
        result.check(
            f"{figures['keys']:,} keys: after --apply only the report-only orphan remains",
            figures.get("remaining_after_apply", 0) <= 1,
        )
    ratio = sb / sa if sa > 0 else float("inf")
    scale = large / small
    limit = TIME_RATIO_LIMIT * scale / 10
    result.rows += [
        Row(
            f"reconcile time, {large:,} keys",
            f"{sb:.2f} s",
            f"{sa:.2f} s at {small:,} keys",
            fmt_ratio(ratio),
            f"≤ {limit:g}× for {scale:g}× keys",
            ratio <= limit,
        ),
        Row(
            f"peak RSS, {large:,} keys",
            f"{b['peak_rss_mb']:.0f} MB",
            f"{a['peak_rss_mb']:.0f} MB at {small:,} keys",
            fmt_ratio(b["peak_rss_mb"] / a["peak_rss_mb"]),
            f"≤ {RSS_LIMIT_MB:.0f} MB" if large >= 1_000_000 else "(quick: no target)",
            b["peak_rss_mb"] <= RSS_LIMIT_MB if large >= 1_000_000 else None,
        ),
    ]
    return result


def main() -> None:
    from benchmarks.reconcile_scale import run

    configure("warning")
    figures: dict[str, Any] = run(int(sys.argv[1]))
    print(json.dumps(figures, default=str))


if __name__ == "__main__":
    main()
