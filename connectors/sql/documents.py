"""Cutting one batch of document lines into pages of whole documents. Pure, no I/O.

A page holds whole documents, about ``page_size`` lines (a document longer than a page
comes alone), and names in ``complete_documents`` each of its documents without a
quarantined line, so the ledger withdraws lines a document no longer has (architecture
§3.6). A document found changed but with no line left (deleted between the two reads of
a batch) is named with no movements: all its stored lines are withdrawn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from connectors.sql.mapping import RowError, RowMapper, document_of, to_utc, to_version
from sync.model import Movement, Page, RejectedRecord


def document_pages(
    mapper: RowMapper,
    docs: Sequence[Sequence[Any]],
    lines: Sequence[Mapping[Any, Any]],
    page_size: int,
) -> tuple[list[Page], Any]:
    """Pages (cursor None) of the documents ``docs`` from their ``lines`` (in document order),
    and the newest stamp read: an aware UTC datetime or an int version; None if none read.
    A stamp the mapper rejects (a version beyond ``MAX_VERSION``) does not count: the cursor
    stays below its line, which is re-read (and quarantined) until the ERP row is fixed."""
    stream = mapper.stream
    grouped: dict[str, list[Mapping[Any, Any]]] = {document_of(stream.name, d): [] for d in docs}
    for row in lines:
        grouped.setdefault(document_of(stream.name, mapper.doc_values(row)), []).append(row)
    pages: list[Page] = []
    movements: list[Movement] = []
    rejects: list[RejectedRecord] = []
    complete: set[str] = set()
    count = 0
    newest: Any = None
    for doc, rows in grouped.items():
        if count and count + len(rows) > page_size:
            pages.append(Page(stream.name, movements, None, rejects, frozenset(complete)))
            movements, rejects, complete, count = [], [], set(), 0
        whole = True
        for row in rows:
            mapped = mapper.map(row)
            if isinstance(mapped, RejectedRecord):
                rejects.append(mapped)
                whole = False
            elif mapped is not None:
                movements.append(mapped)
            newest = _newer(newest, _stamp(mapper, row))
        if whole:
            complete.add(doc)
        count += len(rows)
    if movements or rejects or complete:
        pages.append(Page(stream.name, movements, None, rejects, frozenset(complete)))
    return pages, newest


def _stamp(mapper: RowMapper, row: Mapping[Any, Any]) -> Any:
    s = mapper.stream
    assert s.updated is not None
    try:
        if s.updated_type == "version":
            return to_version(row[s.updated], s.updated)
        return to_utc(row[s.updated], mapper.zone, s.updated)
    except RowError:
        return None


def _newer(current: Any, stamp: Any) -> Any:
    if stamp is None:
        return current
    return stamp if current is None or stamp > current else current
