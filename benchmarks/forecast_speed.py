"""One forecast run over generated series in a fresh process, so that its peak RSS is its own
(scenario "forecast"): ``python -m benchmarks.forecast_speed --series N --days D --jobs J``.

Prints one JSON line: seconds (the forecast only: generating the series is not timed, the
first statsforecast calls' compilation is), peak RSS, the models chosen, and the same run's
baseline: the flat rate (``stocksync report``'s method) over the same series.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter

from benchmarks.common import peak_rss_mb
from sync.forecast.engine import Options
from sync.forecast.fit import forecast_all
from sync.forecast.generator import FAMILIES, generate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--series", type=int, required=True)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--horizon", type=int, default=56)
    args = parser.parse_args()
    per = -(-args.series // len(FAMILIES))
    series = [s for f in FAMILIES for s in generate(f, per, args.days, seed=11)][: args.series]
    started = time.perf_counter()
    flat = [sum(s.values[-30:]) / 30 for s in series]
    flat_s = time.perf_counter() - started
    opts = Options(horizon=args.horizon, n_jobs=args.jobs, history_kept=4 * args.horizon)
    started = time.perf_counter()
    fitted = forecast_all(series, opts)
    seconds = time.perf_counter() - started
    out = {
        "series": len(series),
        "days": args.days,
        "jobs": args.jobs,
        "seconds": round(seconds, 2),
        "flat_rate_s": round(flat_s, 4),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "models": dict(Counter(f.forecast.model for f in fitted)),
        "forecasts": sum(1 for f in fitted if len(f.forecast.points) == args.horizon),
        "flat_keys": len(flat),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
