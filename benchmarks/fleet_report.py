"""The fleet scenario's table rows, from the figures of its two runs (``benchmarks.fleet``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from benchmarks.common import Row

if TYPE_CHECKING:
    from benchmarks.fleet import Plan


def _ms(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 1000:,.0f} ms"


def rows(one: dict[str, Any], three: dict[str, Any], plan: Plan) -> list[Row]:
    """The table rows: 3 processes (``three``'s figures) against 1 (``one``'s)."""
    c1, c3 = one["connections"], three["connections"]
    ratio = three["cycles_per_s"] / one["cycles_per_s"] if one["cycles_per_s"] else 0.0
    per3 = c3["window"]["per_replica_median"]
    take = three["takeover"]
    return [
        Row(
            "cycles/s (offered "
            f"{plan.pipelines} pipelines / {plan.interval_s:g} s = {plan.offered_per_s:g}/s)",
            f"{three['cycles_per_s']:.1f}/s on 3 processes (leases {three['split']}, cycles "
            f"{_per(three['cycles_per_replica'])})",
            f"{one['cycles_per_s']:.1f}/s on 1 process",
            f"{ratio:.2f}",
            "(information)",
        ),
        Row(
            "cycle duration p50 / p95",
            f"{_ms(three['cycle_p50_s'])} / {_ms(three['cycle_p95_s'])}",
            f"{_ms(one['cycle_p50_s'])} / {_ms(one['cycle_p95_s'])}",
            _ratio(three["cycle_p95_s"], one["cycle_p95_s"]),
            "(information)",
        ),
        Row(
            "start gap beyond the interval p95 / max",
            f"{_ms(three['gap_p95_s'])} / {_ms(three['gap_max_s'])}",
            f"{_ms(one['gap_p95_s'])} / {_ms(one['gap_max_s'])}",
            "",
            "(information)",
        ),
        Row(
            "start delay behind its tick's first start, p95 / max (1 process: every "
            "pipeline falls due at once)",
            f"{_ms(three['tick_delay_p95_s'])} / {_ms(three['tick_delay_max_s'])} "
            "(approximate: claimed leases shift a pipeline's tick)",
            f"{_ms(one['tick_delay_p95_s'])} / {_ms(one['tick_delay_max_s'])}",
            "",
            "(information)",
        ),
        Row(
            "cycles/s while a tick's queue lasts (a process's capacity), median per replica",
            f"{_rates(three['drain_per_s'])}",
            f"{_rates(one['drain_per_s'])}",
            "",
            "(information)",
        ),
        Row(
            "state connections, peak / steady (median)",
            f"{c3['whole_run']['peak']} / {c3['window']['median']:g} in all "
            f"(per replica steady {sorted(per3.values(), reverse=True)})",
            f"{c1['whole_run']['peak']} / {c1['window']['median']:g}",
            _ratio(c3["window"]["median"], c1["window"]["median"]),
            "(information)",
        ),
        Row(
            f"take-over after SIGKILL ({take['victim_pipelines']} pipelines): leases / "
            "first new cycle",
            f"{_s(take['lease_s'])} / {_s(take['first_cycle_s'])}",
            f"heartbeat {take['heartbeat_s']:g} s",
            "",
            f"leases ≤ lease_timeout_s = {take['bound_s']:g} s",
            take["lease_s"] is not None and take["lease_s"] <= take["bound_s"],
        ),
    ]


def _s(x: float | None) -> str:
    return "none" if x is None else f"{x:.2f} s"


def _per(per_replica: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(per_replica.items()))


def _rates(per_replica: dict[str, float | None]) -> str:
    return ", ".join(
        f"{k}: {'n/a' if v is None else f'{v:.0f}/s'}" for k, v in sorted(per_replica.items())
    )


def _ratio(x: float | None, y: float | None) -> str:
    return f"{x / y:.2f}" if x is not None and y else ""
