"""The ``forecast`` extra: statsforecast is imported here and nowhere else first."""

from __future__ import annotations

import importlib
from types import ModuleType

from sync.errors import StockSyncError

EXTRA_HINT = "install it with: pip install 'stocksync[forecast]'"


def require(module: str = "statsforecast") -> ModuleType:
    """Import a module of the ``forecast`` extra, or raise an error naming the extra."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise StockSyncError(
            f"the demand forecast needs the 'forecast' extra ({exc.name or module} is missing)",
            hint=EXTRA_HINT,
        ) from None
