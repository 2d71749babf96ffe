"""What `stocksync status` shows: cursors, outbox depth by state (and levels not queued yet),
freshness, open conflicts, last runs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from sync.cli.tables import print_table
from sync.freshness import freshness
from sync.push_batch import recorded_usage
from sync.state.store import OUTBOX_STATES, OutboxRow, StateStore, display_ref

#: how `stocksync retry` and the conflicts log act on the rows `status` lists
STUCK_HINT = (
    "dead rows: fix the cause in the last error, then `stocksync retry ID…` (or --all; "
    "a CRM record deleted meanwhile is created again); "
    "blocked rows are pushed once the CRM knows the SKU or warehouse "
    "(`stocksync conflicts list --open`)"
)


def _ts(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


STUCK_COLUMNS = ("pipeline", "id", "state", "target", "key", "attempts", "last_error")


def stuck_row(row: OutboxRow) -> dict[str, Any]:
    """One dead or blocked outbox row as `status` shows it (JSON and CSV alike)."""
    return {
        "pipeline": row.pipeline,
        "id": row.id,
        "state": row.state,
        "target": row.target,
        "key": display_ref(row.ref),
        "attempts": row.attempts,
        "last_error": row.last_error,
    }


def collect(store: StateStore, *, limit: int = 100, now: datetime | None = None) -> dict[str, Any]:
    """A JSON-ready snapshot of the state database at ``now`` (default: the clock); at most
    ``limit`` dead/blocked rows."""
    now = now or datetime.now(UTC)
    outbox: dict[str, dict[str, int]] = {}
    for (pipeline, state), count in store.outbox_counts().items():
        outbox.setdefault(pipeline, dict.fromkeys(OUTBOX_STATES, 0))[state] = count
    conflicts: dict[str, dict[str, int]] = {}
    for (pipeline, kind), count in store.open_conflict_counts().items():
        conflicts.setdefault(pipeline, {})[kind] = count
    return {
        "database": store.dialect,
        "revision": store.revision(),
        "pipelines": store.pipelines(),
        "cursors": [
            {
                "pipeline": c.pipeline,
                "stream": c.stream,
                "position": _ts(c.cursor.updated_at),
                "tie_break": c.cursor.tie_break,
                "advanced_at": _ts(c.advanced_at),
            }
            for c in store.cursors()
        ],
        "outbox": outbox,
        #: levels a page changed that are not queued yet (mid-pull, or after a crash
        #: until the next push queues them)
        "levels_waiting": store.pending_level_counts(),
        #: levels the CRM shows rounded to its field's precision (the ledger has more
        #: decimals than the CRM field holds): how many, and the first keys
        "levels_inexact": {
            pipeline: {"count": count, "keys": [str(k) for k in keys]}
            for pipeline, (count, keys) in store.inexact_levels().items()
        },
        #: reserved stock per pipeline, from the last snapshot of the ERP's (static
        #: reservations from the config come on top): keys, total, last change
        "reserved": {
            pipeline: {"keys": keys, "total": str(total), "changed_at": _ts(changed)}
            for pipeline, (keys, total, changed) in store.reserved_summary().items()
        },
        #: per pipeline: seconds since the oldest ERP change the CRM may not reflect yet,
        #: that time, and what holds it (outbox, levels or pull; see sync.freshness)
        "freshness": {name: f.as_dict() for name, f in freshness(store, now).items()},
        "open_conflicts": conflicts,
        #: per pipeline whose CRM counts calls (Salesforce): its API usage as the last push
        #: saw it, the ceiling at which pushing pauses, and why it paused (or null)
        "api_budget": recorded_usage(store),
        #: rows a person must act on (their counts are in ``outbox``)
        "stuck": [stuck_row(r) for r in store.outbox_stuck(limit=limit)],
        "runs": [
            {
                "pipeline": r.pipeline,
                "job": r.job,
                "started_at": _ts(r.started_at),
                "finished_at": _ts(r.finished_at),
                "status": r.status,
                "pulled": r.pulled,
                "applied": r.applied,
                "pushed": r.pushed,
                "failed": r.failed,
                "error": r.error,
                "runner": r.runner,
            }
            for r in store.runs(limit=10)
        ],
        #: daemons sharing a server state database and the pipelines each holds a lease on
        "replicas": [
            {
                "replica": r.replica,
                "started_at": _ts(r.started_at),
                "heartbeat_at": _ts(r.heartbeat_at),
                "heartbeat_age_s": round((now - r.heartbeat_at).total_seconds(), 1),
                "pipelines": list(r.pipelines),
            }
            for r in store.replicas()
        ],
    }


def _render_freshness(data: dict[str, Any], console: Console) -> None:
    """One line per pipeline: how old its oldest change not confirmed in the CRM may be."""
    causes = {
        "outbox": "held in the outbox",
        "levels": "a changed level not queued yet",
        "pull": "since the start of the last completed ERP pull",
    }
    for pipeline in data["pipelines"]:
        f = data["freshness"].get(pipeline)
        if f is not None:
            console.print(
                f"{pipeline}: freshness {f['freshness_s']:.0f}s (the CRM reflects every ERP "
                f"change seen before {f['since']}; oldest: {causes[f['cause']]})",
                markup=False,
            )


def _render_replicas(data: dict[str, Any], console: Console) -> None:
    """The daemons sharing a server state database (none on SQLite: one daemon per file)."""
    if not data["replicas"]:
        return
    table = Table(title="replicas (the pipelines each holds a lease on)")
    for col in ("replica", "started", "last heartbeat", "pipelines"):
        table.add_column(col)
    for r in data["replicas"]:
        held = r["pipelines"]
        table.add_row(
            r["replica"],
            r["started_at"],
            f"{r['heartbeat_age_s']:.0f}s ago",
            f"{len(held)}: {', '.join(held)}" if held else "none",
        )
    print_table(console, table)


def _render_reserved(data: dict[str, Any], console: Console) -> None:
    """One line per pipeline: its reserved stock in the ERP's last snapshot."""
    for pipeline in data["pipelines"]:
        held = data["reserved"].get(pipeline)
        console.print(
            f"{pipeline}: reserved stock in the ERP on {held['keys']} key(s), "
            f"{held['total']} in all, last changed {held['changed_at']}"
            if held
            else f"{pipeline}: no reserved stock in the ERP's last snapshot",
            markup=False,
        )


def _render_inexact(data: dict[str, Any], console: Console) -> None:
    """One line per pipeline whose CRM shows some levels rounded (field precision)."""
    for pipeline, inexact in data["levels_inexact"].items():
        more = ", …" if inexact["count"] > len(inexact["keys"]) else ""
        console.print(
            f"{pipeline}: {inexact['count']} level(s) shown rounded in the CRM (the ledger "
            f"has more decimals than the CRM field holds): {', '.join(inexact['keys'])}{more}",
            markup=False,
        )


def _render_budget(data: dict[str, Any], console: Console) -> None:
    """One line per pipeline whose CRM counts API calls: used of the limit, the ceiling."""
    for pipeline, b in data["api_budget"].items():
        share = f" ({100 * b['used'] / b['limit']:.1f} %)" if b["limit"] else ""
        line = (
            f"{pipeline}: CRM API calls {b['used']} of {b['limit']}{share} at {b['seen_at']}; "
            f"pushing pauses at {b['ceiling']}"
        )
        if b.get("paused"):
            line += f"; PAUSED: {b['paused']}"
        console.print(line, markup=False)


def render(data: dict[str, Any], console: Console) -> None:
    console.print(f"state database: {data['database']} (schema {data['revision']})", markup=False)
    _render_replicas(data, console)
    if not data["pipelines"]:
        console.print(
            "no pipeline has run yet: nothing pulled, nothing pending, no conflicts", markup=False
        )
        return
    cursors = Table(title="cursors")
    for col in ("pipeline", "stream", "position", "advanced at"):
        cursors.add_column(col)
    for c in data["cursors"]:
        cursors.add_row(c["pipeline"], c["stream"], c["position"], c["advanced_at"])
    print_table(console, cursors)
    outbox = Table(title="outbox")
    outbox.add_column("pipeline")
    outbox.add_column("levels waiting", justify="right")
    for state in OUTBOX_STATES:
        outbox.add_column(state, justify="right")
    for pipeline in data["pipelines"]:
        counts = data["outbox"].get(pipeline, {})
        waiting = data["levels_waiting"].get(pipeline, 0)
        outbox.add_row(pipeline, str(waiting), *(str(counts.get(s, 0)) for s in OUTBOX_STATES))
    print_table(console, outbox)
    _render_freshness(data, console)
    _render_reserved(data, console)
    _render_inexact(data, console)
    _render_budget(data, console)
    _render_stuck(data, console)
    conflicts = data["open_conflicts"]
    if conflicts:
        table = Table(title="open conflicts")
        for col in ("pipeline", "kind", "count"):
            table.add_column(col)
        for pipeline, kinds in conflicts.items():
            for kind, count in sorted(kinds.items()):
                table.add_row(pipeline, kind, str(count))
        print_table(console, table)
    else:
        console.print("open conflicts: none", markup=False)
    runs = Table(title="last runs")
    for col in ("pipeline", "job", "started", "status", "pulled", "applied", "pushed", "failed"):
        runs.add_column(col)
    for r in data["runs"]:
        runs.add_row(
            r["pipeline"],
            r["job"],
            r["started_at"],
            r["status"],
            str(r["pulled"]),
            str(r["applied"]),
            str(r["pushed"]),
            str(r["failed"]),
        )
    print_table(console, runs)


def _render_stuck(data: dict[str, Any], console: Console) -> None:
    rows = data["stuck"]
    total = sum(
        counts.get(state, 0) for counts in data["outbox"].values() for state in ("dead", "blocked")
    )
    if not rows:
        return
    table = Table(title="dead and blocked rows")
    for col in ("pipeline", "id", "state", "target", "key", "attempts", "last error"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["pipeline"],
            str(r["id"]),
            r["state"],
            r["target"],
            r["key"],
            str(r["attempts"]),
            r["last_error"] or "",
        )
    print_table(console, table)
    if total > len(rows):
        console.print(f"… {total - len(rows)} more (raise --limit)", markup=False)
    console.print(STUCK_HINT, markup=False)
