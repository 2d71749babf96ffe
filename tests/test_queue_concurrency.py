"""Pages and pushes at the same time on a database server: the CRM still ends equal.

A deployment never runs them together for one pipeline (they share a lock),
but the flag protocol must not depend on that: a level changed while a
pusher queues flags keeps its flag or gets a newer outbox row, never
neither. Run on the servers, where transactions really interleave.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from connectors.memory.sink import MemoryCrm
from sync.ledger import apply_page
from sync.model import Movement, MovementKind, Page
from sync.push import Pusher
from sync.state import StateStore
from tests.conftest import _backend_url


def _now() -> datetime:
    return datetime.now(UTC)


@pytest.mark.parametrize("backend", ["postgresql", "mysql"])
def test_levels_changed_while_a_pusher_queues_and_pushes_all_reach_the_crm(
    backend: str, pipeline: str
) -> None:
    store = StateStore(_backend_url(backend))
    crm = MemoryCrm()
    rng = random.Random(20261128)
    writing = threading.Event()
    writing.set()
    errors: list[BaseException] = []

    def push_until_done() -> None:
        try:
            while writing.is_set():
                Pusher(store, crm, pipeline, now=_now).run()
            Pusher(store, crm, pipeline, now=_now).run()  # what the last pages left
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    pusher = threading.Thread(target=push_until_done)
    pusher.start()
    try:
        for page_no in range(80):
            at = _now()
            # mostly keys no later page touches again: a flag lost now stays lost
            lines = [
                Movement(
                    f"memory:p{page_no}:{i}:1",
                    MovementKind.RECEIPT,
                    f"S{page_no}-{i}",
                    f"W{i % 2}",
                    Decimal(rng.randint(1, 9)),
                    at,
                    at,
                )
                for i in range(10)
            ]
            lines += [  # and edits of lines pulled before, which move existing levels
                Movement(
                    f"memory:p{rng.randrange(page_no + 1)}:{rng.randrange(10)}:1",
                    MovementKind.RECEIPT,
                    f"S{rng.randrange(page_no + 1)}-{rng.randrange(10)}",
                    f"W{rng.randrange(2)}",
                    Decimal(rng.randint(1, 9)),
                    at,
                    at,
                    active=rng.random() > 0.2,
                )
                for _ in range(5)
            ]
            apply_page(store, pipeline, Page("s", lines, None), now=at)
    finally:
        writing.clear()
        pusher.join(60)
    assert not pusher.is_alive() and not errors, errors
    levels = store.levels(pipeline)
    assert crm.values() == levels
    assert store.pending_levels(pipeline) == [] and store.outbox_rows(pipeline) == []
    records = Counter(r.key for r in crm.levels.values())
    assert all(n == 1 for n in records.values()), "a CRM record was duplicated"
    store.close()
