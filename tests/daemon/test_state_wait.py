"""A state database server that cannot be reached at start: the daemon waits for it.

A PostgreSQL still booting with the host must not end the daemon with exit 2, which
systemd's ``RestartPreventExitStatus=2`` (rightly, for a bad config) would never restart.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.conftest import server_url
from tests.test_cli import ROOT, textwrap_config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Forwarder:
    """A TCP forwarder from a loopback port to a real server, started when the test says."""

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self.port, self.target = port, target
        self.listener = socket.create_server(("127.0.0.1", port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()


def _config(path: Path, url: str) -> Path:
    path.write_text(
        textwrap_config(f"""
        state: {{url: "{url}"}}
        metrics: null
        log: {{format: json}}
        pipelines:
          - name: main
            erp: {{type: memory}}
            crm: {{type: memory-crm}}
            schedule: {{interval_s: 3600}}
        """)
    )
    return path


class DaemonLog:
    """The daemon's stderr as JSON events, read in a thread."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.events: list[dict[str, object]] = []
        self.text: list[str] = []
        assert proc.stderr is not None
        stream = proc.stderr
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.text.append(line)
            with contextlib.suppress(ValueError):
                self.events.append(json.loads(line))

    def wait_for(self, event: str, timeout_s: float = 30.0) -> dict[str, object]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for e in list(self.events):
                if e.get("event") == event:
                    return e
            time.sleep(0.05)
        raise AssertionError(f"no {event!r} event; stderr:\n{''.join(self.text)}")


def _start(config: Path, cwd: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKSYNC_")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.Popen(
        [sys.executable, "-m", "sync", "run", "-c", str(config)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=cwd,
    )


def test_the_daemon_waits_for_a_state_server_that_comes_up_later(tmp_path: Path) -> None:
    real = make_url(server_url("STOCKSYNC_TEST_PG_URL", "PostgreSQL"))
    port = _free_port()
    url = real.set(host="127.0.0.1", port=port, password="Wait-S3cret")
    proc = _start(_config(tmp_path / "c.yaml", url.render_as_string(hide_password=False)), tmp_path)
    log = DaemonLog(proc)
    forwarder = None
    try:
        first = log.wait_for("state_unreachable")
        assert first["attempt"] == 1 and proc.poll() is None
        assert f"127.0.0.1:{port}" in str(first["error"]) and "***" in str(first["error"])
        forwarder = Forwarder(port, (real.host or "127.0.0.1", real.port or 5432))
        started = log.wait_for("daemon_started", timeout_s=30)
        assert started["pipelines"] == ["main"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        if forwarder is not None:
            forwarder.close()
    assert "Wait-S3cret" not in "".join(log.text)


def test_a_stop_while_waiting_exits_0_and_starts_nothing(tmp_path: Path) -> None:
    url = f"postgresql://ops:Wait-S3cret@127.0.0.1:{_free_port()}/nope"
    proc = _start(_config(tmp_path / "c.yaml", url), tmp_path)
    log = DaemonLog(proc)
    try:
        log.wait_for("state_unreachable")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert [e for e in log.events if e.get("event") == "daemon_started"] == []
    assert "Wait-S3cret" not in "".join(log.text)


def _refused_login_urls() -> list[str]:
    pg = make_url(server_url("STOCKSYNC_TEST_PG_URL", "PostgreSQL"))
    mysql = make_url(server_url("STOCKSYNC_TEST_MYSQL_URL", "MariaDB/MySQL"))
    return [
        # trust auth: a role that does not exist is what PostgreSQL refuses here
        pg.set(username="no_such_role_x", password="Wait-S3cret").render_as_string(False),
        mysql.set(username="root", password="Wait-S3cret").render_as_string(False),
    ]


def test_a_refused_login_is_not_waited_for(tmp_path: Path) -> None:
    for url in _refused_login_urls():
        proc = _start(_config(tmp_path / "c.yaml", url), tmp_path)
        log = DaemonLog(proc)
        assert proc.wait(timeout=60) == 2
        time.sleep(0.2)  # the reader thread drains the pipe
        text = "".join(log.text)
        assert "refused the login" in text and "Wait-S3cret" not in text
        assert [e for e in log.events if e.get("event") == "state_unreachable"] == []
