"""Which keys one alert check looks at, so that a quiet cycle is no scan of every level.

A key can cross its safety stock only when its figure or its threshold moved.
The check therefore looks at every level only the first time, and again when a
setting that decides thresholds or the compared figure changed (``basis``,
``default_threshold``, ``thresholds``, ``from_crm``: a fingerprint kept in
``pipeline_meta``). Otherwise it looks at the union of

- levels written since the last check began (``stock_levels.updated_at``),
- with ``basis: available``: ERP reserved figures written since then
  (``reserved_stock.updated_at``) and keys whose static reservation changed,
- keys that are low now: a released reservation deletes its row, leaving no
  stamp, and only a low key can cross when its available stock goes *up*,
- with ``from_crm``: keys whose threshold differs from the one remembered
  (the CRM's safety stocks are read whole every check anyway),

each "since" reaching ``OVERLAP_S`` further back, so that a write stamped just
before the last check but committed after it, or a clock a little behind, is
still seen. Looking at a key twice is harmless: only a crossing fires.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from sync.config import AlertSettings
from sync.model import LevelValue, StockKey
from sync.reservations import level_value, parse_key, reserved_of, static_applied, static_changes
from sync.state.schema import from_units
from sync.state.store import AlertState, StateStore

#: pipeline_meta: when the last alert check began (ISO 8601, UTC)
MARK_META = "alerts_checked_at"
#: pipeline_meta: the alert settings the last check used (JSON)
SETTINGS_META = "alerts_settings"
#: pipeline_meta: the static reservations the last check used (JSON {key: qty})
STATIC_META = "alerts_static"
#: how far before the last check a write still counts as new, in seconds
OVERLAP_S = 300.0


@dataclass
class Scope:
    """What one check reads: on hand per key, the remembered states of those keys."""

    #: True when every level is looked at
    full: bool
    on_hand: Iterable[tuple[StockKey, Decimal]]
    states: Mapping[StockKey, AlertState]
    #: pipeline_meta entries to store with the check's new states
    meta: dict[str, str] = field(default_factory=dict)


def settings_fingerprint(settings: AlertSettings) -> str:
    """The alert settings that decide thresholds and the compared figure, as JSON."""
    default = settings.default_threshold
    return json.dumps(
        {
            "basis": settings.basis,
            "default": None if default is None else str(default),
            "thresholds": {k: str(v) for k, v in sorted(settings.thresholds.items())},
            "from_crm": settings.from_crm,
        },
        sort_keys=True,
    )


def scope(
    store: StateStore,
    pipeline: str,
    settings: AlertSettings,
    *,
    static: Mapping[str, Decimal],
    crm: Mapping[StockKey, Decimal] | None,
    threshold: Callable[[StockKey], Decimal | None],
    now: datetime,
) -> Scope:
    """The keys this check must look at (module docstring), with their on hand and states.

    ``threshold`` gives a key's safety stock as the check will use it (``crm``
    being the CRM's safety stocks when ``from_crm`` is on, else None).
    """
    fingerprint = settings_fingerprint(settings)
    statics = static_applied(static)
    meta = {
        MARK_META: now.isoformat(),
        SETTINGS_META: fingerprint,
        STATIC_META: json.dumps(statics, sort_keys=True),
    }
    mark = store.meta(pipeline, MARK_META)
    if mark is None or store.meta(pipeline, SETTINGS_META) != fingerprint:
        every: Iterable[tuple[StockKey, Decimal]] = store.iter_levels(pipeline)
        if settings.basis == "available":
            every = itertools.chain(every, sorted(_reserved_only(store, pipeline, static).items()))
        return Scope(True, every, store.alert_states(pipeline), meta)
    since = datetime.fromisoformat(mark) - timedelta(seconds=OVERLAP_S)
    changed = store.levels_since(pipeline, since)
    keys = set(changed) | store.low_alert_keys(pipeline)
    if settings.basis == "available":
        keys |= store.reserved_since(pipeline, since)
        keys |= static_changes(json.loads(store.meta(pipeline, STATIC_META) or "{}"), statics)
    states = None
    if crm is not None:
        states = store.alert_states(pipeline)
        keys |= {
            k
            for k in crm.keys() | states.keys()
            if threshold(k) != (states[k].threshold if k in states else None)
        }
    on_hand = changed | store.levels_of(pipeline, keys - changed.keys())
    if settings.basis == "available":
        # a key reserved with nothing on hand has no level row: its on hand is 0
        on_hand |= {key: Decimal(0) for key in keys - on_hand.keys()}
    if states is None:
        states = store.alert_states(pipeline, on_hand.keys())
    return Scope(False, sorted(on_hand.items()), states, meta)


def _reserved_only(
    store: StateStore, pipeline: str, static: Mapping[str, Decimal]
) -> dict[StockKey, Decimal]:
    """Keys with reserved stock (ERP or static) and no level row, at on hand 0: the CRM
    shows them at available below zero, so a check on available must see them."""
    held = set(store.reserved_units(pipeline)) | {parse_key(ref) for ref in static}
    return {key: Decimal(0) for key in held - store.levels_of(pipeline, held).keys()}


def figures(
    store: StateStore,
    pipeline: str,
    on_hand: Iterable[tuple[StockKey, Decimal]],
    static: Mapping[str, Decimal],
) -> Iterator[tuple[StockKey, LevelValue]]:
    """On hand and available per key: available = on hand − (ERP reserved + static).

    Reads the stored reserved figures once (as many rows as keys with reserved stock).
    """
    erp = store.reserved_units(pipeline)
    for key, qty in on_hand:
        reserved = reserved_of(from_units(erp.get(key, 0)), key, static)
        yield key, level_value(qty, reserved)
