"""Leases split the pipelines between replicas on the real PostgreSQL and MariaDB servers."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from rich.console import Console
from sqlalchemy import create_engine, delete, select, text
from sqlalchemy.engine import Engine
from structlog.testing import capture_logs

from sync.cli.status import collect, render
from sync.config import ReplicaSettings
from sync.service.leases import Heartbeat, Leases
from sync.state import StateStore
from sync.state import schema as s
from tests.conftest import server_url

SERVERS = {
    "postgresql": ("STOCKSYNC_TEST_PG_URL", "PostgreSQL"),
    "mysql": ("STOCKSYNC_TEST_MYSQL_URL", "MariaDB/MySQL"),
}


@pytest.fixture(params=sorted(SERVERS))
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """A migrated state database on a real server with no replica or lease rows."""
    store = StateStore(server_url(*SERVERS[request.param]))
    with store.engine.begin() as conn:  # tests run one at a time: start from nobody
        conn.execute(delete(s.leases))
        conn.execute(delete(s.replicas))
    yield store.engine
    store.close()
    while ENGINES:
        ENGINES.pop().dispose()


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


ENGINES: list[Engine] = []


def replica(
    engine: Engine,
    name: str,
    pipelines: list[str],
    *,
    heartbeat_s: float = 0.1,
    timeout_s: float = 0.6,
    busy: frozenset[str] = frozenset(),
    clock: FakeClock | None = None,
) -> Leases:
    """A replica with an engine of its own, as in the daemon (its sessions get timeouts)."""
    own = create_engine(engine.url)
    ENGINES.append(own)
    leases = Leases(
        own,
        name,
        heartbeat_s=heartbeat_s,
        lease_timeout_s=timeout_s,
        busy=lambda: busy,
        **({"clock": clock} if clock else {}),
    )
    leases.set_pipelines(pipelines)
    return leases


def names(n: int) -> list[str]:
    tag = uuid.uuid4().hex[:6]
    return [f"p{tag}_{i:02d}" for i in range(n)]


def owners(engine: Engine) -> dict[str, str | None]:
    with engine.connect() as conn:
        return dict(conn.execute(select(s.leases.c.pipeline, s.leases.c.owner)).all())  # type: ignore[arg-type]


def test_three_replicas_split_ten_pipelines_without_overlap(engine: Engine) -> None:
    pipelines = names(10)
    a, b, c = (replica(engine, n, pipelines, timeout_s=30) for n in ("a", "b", "c"))
    first = a.heartbeat()
    assert first.live_replicas == 1 and len(first.held) == 10  # alone: it takes everything
    for _ in range(3):
        for r in (b, c, a):
            r.heartbeat()
    held = [r.held for r in (a, b, c)]
    assert sorted(len(h) for h in held) == [3, 3, 4]  # 10 // 3, one more for the first
    assert frozenset().union(*held) == frozenset(pipelines)
    assert sum(len(h) for h in held) == 10  # no pipeline on two replicas
    assert owners(engine) == {p: r.replica for r in (a, b, c) for p in r.held}
    assert all(r.holds(p) for r in (a, b, c) for p in r.held)
    assert not any(a.holds(p) for p in b.held)


def test_a_dead_replicas_leases_are_taken_once_they_expire(engine: Engine) -> None:
    pipelines = names(6)
    a = replica(engine, "a", pipelines, heartbeat_s=0.5, timeout_s=2)  # lifetime 1.5 s
    b = replica(engine, "b", pipelines, heartbeat_s=0.5, timeout_s=2)
    for r in (a, b, a, b):  # a gives three back, b takes them
        r.heartbeat()
    assert len(a.held) == len(b.held) == 3
    dead = set(a.held)
    # a says nothing any more; its leases were renewed a moment ago and are not b's yet
    early = b.heartbeat()
    assert early.claimed == [] and early.held == frozenset(pipelines) - dead
    time.sleep(1.6)  # one lease lifetime later: expired, and a no longer counts as live
    beat = b.heartbeat()
    assert set(beat.claimed) == dead and beat.live_replicas == 1
    assert beat.held == frozenset(pipelines)
    with capture_logs() as logs:  # the "dead" one comes back: it learns it lost them
        back = a.heartbeat()
    assert set(back.lost) == dead
    assert [e["pipeline"] for e in logs if e["event"] == "lease_lost"] == sorted(dead)


def test_a_lease_lapses_locally_before_the_others_may_take_it(engine: Engine) -> None:
    clock = FakeClock()
    pipelines = names(2)
    a = replica(engine, "a", pipelines, heartbeat_s=1, timeout_s=3, clock=clock)
    a.heartbeat()
    assert a.holds(pipelines[0])
    clock.t += 1.99  # within the lifetime (timeout - heartbeat = 2 s)
    assert a.holds(pipelines[0])
    clock.t += 0.02  # no renewal for a whole lifetime: no new job may start
    assert not a.holds(pipelines[0]) and a.held == frozenset()


def test_busy_pipelines_are_not_given_away(engine: Engine) -> None:
    pipelines = names(4)
    running: set[str] = set(pipelines)
    a = Leases(engine, "a", heartbeat_s=0.1, lease_timeout_s=30, busy=lambda: frozenset(running))
    a.set_pipelines(pipelines)
    b = replica(engine, "b", pipelines, timeout_s=30)
    a.heartbeat()
    b.heartbeat()
    assert a.heartbeat().released == []  # over its share, but every pipeline is running
    running.clear()
    assert len(a.heartbeat().released) == 2
    assert len(b.heartbeat().claimed) == 2


def test_a_clean_stop_hands_the_leases_over_at_the_next_heartbeat(engine: Engine) -> None:
    pipelines = names(4)
    a, b = (
        replica(engine, "a", pipelines, timeout_s=30),
        replica(engine, "b", pipelines, timeout_s=30),
    )
    a.heartbeat()
    b.heartbeat()
    a.heartbeat()
    b.heartbeat()
    assert len(b.held) == 2
    a.release_all()
    assert b.heartbeat().held == frozenset(pipelines)  # not 30 s later
    with engine.connect() as conn:
        assert conn.execute(select(s.replicas.c.replica)).scalars().all() == ["b"]


def test_claims_skip_rows_another_replica_has_locked(engine: Engine) -> None:
    pipelines = names(3)
    holder = engine.connect()
    tx = holder.begin()
    locked = "FOR UPDATE"
    a = replica(engine, "a", pipelines, timeout_s=30)
    a.heartbeat()  # creates the rows and takes them
    a.release_all()
    holder.execute(text(f"SELECT pipeline FROM leases {locked}"))  # another heartbeat, say
    b = replica(engine, "b", pipelines, timeout_s=30)
    done: list[object] = []
    worker = threading.Thread(target=lambda: done.append(b.heartbeat()))
    worker.start()
    worker.join(20)
    try:
        assert not worker.is_alive(), "the heartbeat waited for locked lease rows"
        assert done and done[0].held == frozenset()  # type: ignore[attr-defined]
    finally:
        tx.rollback()
        holder.close()
        worker.join()
    assert b.heartbeat().held == frozenset(pipelines)


def test_the_runs_log_names_the_replica(engine: Engine) -> None:
    store = StateStore(engine.url.render_as_string(hide_password=False))
    store.runner = "host:1:abcd"
    row = store.start_run(str(uuid.uuid4()), "runner_test", "cycle", datetime.now(UTC))
    with store.engine.connect() as conn:
        runner = conn.execute(select(s.runs.c.runner).where(s.runs.c.id == row)).scalar_one()
    store.close()
    assert runner == "host:1:abcd"


def test_a_failed_heartbeat_is_logged_and_the_thread_goes_on(engine: Engine) -> None:
    pipelines = names(1)
    a = replica(engine, "a", pipelines, timeout_s=30)
    beats: list[object] = []
    heart = Heartbeat(a, on_beat=beats.append)
    assert heart.beat_once() is not None and len(beats) == 1
    good = a.engine
    a.engine = create_engine("postgresql+psycopg://nobody:hunter2secret@127.0.0.1:1/none")
    with capture_logs() as logs:
        assert heart.beat_once() is None  # the server went away
    assert [e["event"] for e in logs] == ["lease_heartbeat_failed"]
    assert "hunter2secret" not in str(logs) and len(beats) == 1
    a.engine = good
    with capture_logs() as logs:
        assert heart.beat_once() is not None
    assert [e["event"] for e in logs] == ["lease_heartbeat_recovered"]


def test_the_lease_timeout_must_cover_three_heartbeats() -> None:
    assert ReplicaSettings(heartbeat_s=1, lease_timeout_s=3).lease_timeout_s == 3
    with pytest.raises(ValueError, match=r"at least 3 × replicas\.heartbeat_s"):
        ReplicaSettings(heartbeat_s=5, lease_timeout_s=10)


def test_status_lists_the_replicas_and_the_pipelines_each_holds(engine: Engine) -> None:
    pipelines = names(3)
    a = replica(engine, "host-a:1:aaaa", pipelines, timeout_s=30)
    b = replica(engine, "host-b:2:bbbb", pipelines, timeout_s=30)
    for r in (a, b, a, b):
        r.heartbeat()
    store = StateStore(engine.url.render_as_string(hide_password=False))
    data = collect(store)
    store.close()
    listed = {r["replica"]: r["pipelines"] for r in data["replicas"]}
    assert listed == {"host-a:1:aaaa": sorted(a.held), "host-b:2:bbbb": sorted(b.held)}
    assert sorted(len(p) for p in listed.values()) == [1, 2]
    console = Console(record=True, width=200)
    render(data, console)
    text = console.export_text()
    assert "replicas (the pipelines each holds a lease on)" in text
    assert f"2: {', '.join(sorted(a.held))}" in text or f"2: {', '.join(sorted(b.held))}" in text


def test_heartbeats_at_the_same_moment_never_fail(engine: Engine) -> None:
    """Three replicas beating as fast as they can: no deadlock, no lock wait error (a plain
    DELETE of old replica rows deadlocked InnoDB heartbeats 900 times in 10 s)."""
    pipelines = names(12)
    # sessions bounded at 5 s, not 1 s: on a loaded host a thread starved of the
    # interpreter for a second inside its transaction is ended by the server, which is
    # the bound working, not the deadlock this test looks for
    replicas = [replica(engine, n, pipelines, heartbeat_s=5, timeout_s=30) for n in ("a", "b", "c")]
    errors: list[BaseException] = []
    beats = [0]
    until = time.monotonic() + 3

    def beat(r: Leases) -> None:
        while time.monotonic() < until:
            try:
                r.heartbeat()
                beats[0] += 1
            except Exception as exc:  # the point: there must be none
                errors.append(exc)

    threads = [threading.Thread(target=beat, args=(r,)) for r in replicas]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors[:3]
    assert beats[0] > 30
    for r in replicas:  # settled: every pipeline held once, 4 each
        r.heartbeat()
    assert sorted(len(r.held) for r in replicas) == [4, 4, 4]
    assert frozenset().union(*(r.held for r in replicas)) == frozenset(pipelines)


def test_replicas_with_different_configs_settle_without_ping_pong(engine: Engine) -> None:
    """A canary with no pipelines counts as live, so the others' shares add up to less than
    the pipelines: the rest are orphans someone keeps, not leases passed back and forth."""
    pipelines = names(12)
    a = replica(engine, "a", pipelines, timeout_s=30)
    b = replica(engine, "b", pipelines, timeout_s=30)
    canary = replica(engine, "c", [], timeout_s=30)
    changes: list[int] = []
    for _ in range(12):
        for r in (a, b, canary):
            beat = r.heartbeat()
            changes.append(len(beat.claimed) + len(beat.released))
        time.sleep(0.16)  # past 1.5 heartbeats: free leases become orphans
    assert a.held | b.held == frozenset(pipelines) and not a.held & b.held
    assert canary.held == frozenset()
    assert sum(changes[-15:]) == 0, changes  # the last five rounds changed nothing


def test_a_failed_heartbeat_leaves_no_pipeline_without_a_lease_row(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipelines = names(2)
    a = replica(engine, "a", pipelines, timeout_s=30)
    original = Leases._claim

    def fails_once(self: Leases, *args: object) -> list[str]:
        monkeypatch.setattr(Leases, "_claim", original)
        raise RuntimeError("the connection broke mid-heartbeat")

    monkeypatch.setattr(Leases, "_claim", fails_once)
    with pytest.raises(RuntimeError):
        a.heartbeat()  # created the rows, then rolled them back
    assert a.heartbeat().held == frozenset(pipelines)


def test_a_stalled_heartbeat_neither_blocks_the_others_nor_keeps_its_pipelines(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replica frozen inside its heartbeat transaction (rows locked): the server ends
    that transaction after about a heartbeat, the others never wait long for it, and its
    pipelines are taken over once its leases expire."""
    pipelines = names(4)
    a = replica(engine, "a", pipelines, heartbeat_s=0.5, timeout_s=2)
    b = replica(engine, "b", pipelines, heartbeat_s=0.5, timeout_s=2)
    for r in (a, b, a, b):
        r.heartbeat()
    assert len(a.held) == 2
    frozen = threading.Event()
    original = Leases._claim

    def freeze(self: Leases, *args: object) -> list[str]:
        if self is a:
            frozen.set()
            time.sleep(4)  # a paused process: its renewed rows stay locked meanwhile
        return original(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Leases, "_claim", freeze)
    outcome: list[object] = []

    def stalled() -> None:
        try:
            outcome.append(a.heartbeat())
        except Exception as exc:
            outcome.append(exc)

    worker = threading.Thread(target=stalled)
    worker.start()
    frozen.wait(10)
    deadline = time.monotonic() + 15
    while b.held != frozenset(pipelines):
        step = threading.Thread(target=b.heartbeat)
        step.start()
        step.join(10)
        assert not step.is_alive(), "b's heartbeat hung behind the frozen one"
        assert time.monotonic() < deadline, "b never took over the frozen replica's pipelines"
        time.sleep(0.3)
    worker.join(15)
    assert outcome and isinstance(outcome[0], Exception), outcome  # the server ended it


def test_a_draining_replica_hands_over_idle_pipelines_and_keeps_busy_ones(
    engine: Engine,
) -> None:
    pipelines = names(4)
    running = {pipelines[0]}
    a = Leases(
        create_engine(engine.url),
        "a",
        heartbeat_s=0.1,
        lease_timeout_s=30,
        busy=lambda: frozenset(running),
    )
    ENGINES.append(a.engine)
    a.set_pipelines(pipelines)
    b = replica(engine, "b", pipelines, timeout_s=30)
    a.heartbeat()  # alone: all four
    b.heartbeat()  # joins: wants two
    a.drain()
    beat = a.heartbeat()
    assert beat.held == {pipelines[0]} and sorted(beat.released) == sorted(pipelines[1:])
    with engine.connect() as conn:  # no longer a live replica: b's share is everything
        assert conn.execute(select(s.replicas.c.replica)).scalars().all() == ["b"]
    assert b.heartbeat().held == frozenset(pipelines[1:])  # at once, not at an expiry
    assert a.heartbeat().held == {pipelines[0]}  # renewed while its job finishes
    running.clear()
    a.release_all()
    assert b.heartbeat().held == frozenset(pipelines)


def test_no_heartbeat_after_release_claims_the_leases_back(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipelines = names(2)
    a = replica(engine, "a", pipelines, timeout_s=30)
    a.heartbeat()
    inside, go_on = threading.Event(), threading.Event()
    original = Leases._claim

    def slow(self: Leases, *args: object) -> list[str]:
        inside.set()
        go_on.wait(10)
        return original(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Leases, "_claim", slow)
    in_flight = threading.Thread(target=a.heartbeat)
    in_flight.start()
    inside.wait(10)
    releasing = threading.Thread(target=a.release_all)
    releasing.start()  # waits for the beat in flight
    time.sleep(0.2)
    go_on.set()
    in_flight.join(10)
    releasing.join(10)
    assert set(owners(engine).values()) == {None}
    assert a.heartbeat().held == frozenset()  # closed: no beat any more
    with engine.connect() as conn:
        assert conn.execute(select(s.replicas.c.replica)).scalars().all() == []
