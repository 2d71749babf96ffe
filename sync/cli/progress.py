"""Progress for long commands: a rich bar on a terminal, nothing extra otherwise.

When stderr is not a terminal the structured log events already say what
happens, so the bar stays out of the way of log collectors.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

from rich.progress import Progress as RichProgress
from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn


class Progress:
    def __init__(self, title: str, *, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.title = title
        self._bar: RichProgress | None = None
        self._task: Any = None
        self.pages = 0
        self.records = 0
        self.pushed = 0

    def __enter__(self) -> Progress:
        if self.enabled:
            self._bar = RichProgress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.title)
        return self

    def _show(self) -> None:
        if self._bar is not None:
            self._bar.update(
                self._task,
                description=f"{self.title}: {self.pages} pages, {self.records} records pulled, "
                f"{self.pushed} pushed",
            )

    def page(self, result: Any) -> None:
        self.pages += 1
        self.records += getattr(result, "received", 0)
        self._show()

    def row(self, report: Any) -> None:
        self.pushed = getattr(report, "pushed", 0) + getattr(report, "skipped", 0)
        self._show()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()
