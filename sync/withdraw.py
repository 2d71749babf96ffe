"""Lines removed from a document: which stored lines a re-read document no longer has.

A source that re-reads a whole document names it in ``Page.complete_documents``;
every stored active line of that document whose key the page lacks was deleted
from the document in the ERP (an edit, or un-audit → remove the line → re-audit)
and is withdrawn like a cancelled line: a new inactive version and a delta of
−its quantity (architecture §3.1 rules 1–4, §3.6). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence, Set

from sync.model import document_key
from sync.state.rows import IncomingLine, LedgerLine


def document_stamps(
    documents: Set[str], lines: Sequence[IncomingLine], cursor_us: int | None
) -> dict[str, int | None]:
    """The ERP stamp (µs) of each complete document as this page read it.

    A document's stamp is the newest ``source_updated_at`` of its lines in the
    page; a document named with no line (all its lines deleted) gets the page's
    cursor, which no line of the page is newer than (None without a cursor).
    """
    newest: dict[str, int] = {}
    for line in lines:
        doc = document_key(line.key)
        if doc in documents and line.updated_us > newest.get(doc, line.updated_us - 1):
            newest[doc] = line.updated_us
    return {doc: newest.get(doc, cursor_us) for doc in documents}


def plan_withdrawals(
    stored: Iterable[LedgerLine],
    present: set[str],
    stamps: Mapping[str, int | None],
    stream: str,
) -> list[tuple[IncomingLine, LedgerLine]]:
    """The inactive new version of each stored line its complete document no longer has.

    ``stored`` are the ledger's lines of the complete documents, ``present`` the
    keys the page carries (quarantined ones included: a line the ledger could not
    take is still in the document). A line already inactive needs nothing (so
    re-reading a page is a no-op, rule 1). A line stored with a stamp newer than
    the page's read of its document was written by a later read, which the page
    cannot contradict (a page delivered late, architecture §3.3). The new version
    carries the document's stamp, so a late copy of an older read cannot bring
    the line back; a line put back in the ERP later comes with a newer stamp.
    Lines that another stream stored are not this page's to judge.
    """
    withdrawn: list[tuple[IncomingLine, LedgerLine]] = []
    for old in stored:
        if not old.active or old.key in present or old.stream != stream:
            continue
        stamp = stamps.get(document_key(old.key))
        if stamp is not None and old.updated_us > stamp:
            continue
        new = IncomingLine(
            old.key,
            old.kind,
            old.sku,
            old.warehouse,
            old.qty_units,
            old.occurred_us,
            old.updated_us if stamp is None else stamp,
            old.doc_no,
            False,
        )
        withdrawn.append((new, old))
    return withdrawn
