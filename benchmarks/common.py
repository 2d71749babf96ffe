"""What every scenario shares: results, rows of the table, RSS, clocks and emulator processes."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


@dataclass(slots=True)
class Row:
    """One line of the results table: a measure, its baseline and whether it meets its target."""

    measure: str
    value: str
    baseline: str = ""
    ratio: str = ""
    target: str = ""
    #: True met, False missed, None no target
    met: bool | None = None


@dataclass(slots=True)
class Result:
    """What a scenario reports: table rows, correctness checks and raw figures for the JSON."""

    name: str
    title: str
    rows: list[Row] = field(default_factory=list)
    checks: dict[str, bool] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None
    error: str | None = None
    seconds: float = 0.0

    def check(self, what: str, ok: bool) -> None:
        self.checks[what] = bool(ok)

    @property
    def correct(self) -> bool:
        return self.error is None and all(self.checks.values())

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["correct"] = self.correct
        return data


def peak_rss_mb() -> float:
    """Peak resident set size of this process, MiB.

    Linux: VmHWM, the high-water mark of this process's own memory. ru_maxrss is
    not used there because it survives exec: a child would report its parent's
    peak if that were higher. Elsewhere ru_maxrss (KiB, or bytes on macOS).
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def child_env() -> dict[str, str]:
    """The environment for child processes: this checkout first on the import path."""
    env = dict(os.environ)
    parts = [str(ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(parts))
    return env


def run_child(module: str, args: Sequence[str], timeout_s: float) -> dict[str, Any]:
    """Run ``python -m module args`` and return the JSON object it prints on its last line."""
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=ROOT,
        timeout=timeout_s,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{module} {' '.join(args)} exited {proc.returncode}: {proc.stderr[-2000:]}"
        )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if not lines:
        raise RuntimeError(f"{module} printed nothing; stderr: {proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


@contextmanager
def k3cloud_emulator(lines: int, *, timeout_s: float = 600.0) -> Iterator[dict[str, Any]]:
    """The K/3 Cloud emulator seeded with ``lines`` receipt lines, in its own process.

    Yields the connection info it prints (url and credentials); stopped with SIGTERM.
    """
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sync",
            "emulator",
            "k3cloud",
            "--scenario",
            f"bench:{lines}",
            "--port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        started = time.monotonic()
        line = proc.stdout.readline()
        if not line:
            err = proc.stderr.read() if proc.stderr else ""
            raise RuntimeError(f"the K/3 Cloud emulator did not start: {err[-2000:]}")
        info: dict[str, Any] = json.loads(line)
        info["seed_s"] = round(time.monotonic() - started, 2)
        yield info
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class CompressedClock:
    """Time for rate-limited runs: real elapsed time plus every sleep skipped.

    ``sleep(d)`` returns at once and moves the clock ``d`` seconds ahead, so a
    limiter's waits cost no wall time yet count fully, while the real work
    between calls (HTTP, engine, database) still counts one to one.
    """

    def __init__(self, start: datetime = datetime(2025, 1, 6, 1, 0, tzinfo=UTC)) -> None:
        self._start = start.timestamp()
        self._origin = time.perf_counter()
        self.skipped_s = 0.0

    def time(self) -> float:
        return self._start + (time.perf_counter() - self._origin) + self.skipped_s

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)

    def sleep(self, seconds: float) -> None:
        self.skipped_s += max(0.0, seconds)


def rate(n: float, seconds: float) -> str:
    return f"{n / seconds:,.0f}/s" if seconds > 0 else "n/a"


def fmt_ratio(value: float) -> str:
    return f"{value:.2f}×" if value >= 10 else f"{value:.3f}"
