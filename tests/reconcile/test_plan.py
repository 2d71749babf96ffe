"""plan() is pure: every finding kind and policy, ordering checks, and linear scale."""

from __future__ import annotations

from decimal import Decimal

import pytest

from sync.model import StockKey
from sync.reconcile import (
    Action,
    CrmRecord,
    CrmValue,
    FigureCheck,
    Finding,
    FindingKind,
    Policies,
    plan,
    shows,
)

A, B, C, D = (StockKey("A", "W1"), StockKey("B", "W1"), StockKey("C", "W1"), StockKey("D", "W1"))
REPORT = Policies("report_only", "report_only", "report_only", "report_only")


def d(value: str | int) -> Decimal:
    return Decimal(value)


def kinds(findings: list[Finding]) -> list[tuple[FindingKind, StockKey, Action]]:
    return [(f.kind, f.key, f.action) for f in findings]


def test_all_equal_is_in_sync() -> None:
    assert plan([(A, d(5))], [(A, d(5))], [(A, CrmValue(d(5), "1"))], [(A, d(5))]) == []


def test_crm_edit_is_crm_modified_and_overwritten_by_default() -> None:
    found = plan([(A, d(5))], [(A, d(5))], [(A, CrmValue(d(9), "c1"))], [(A, d(5))])
    assert kinds(found) == [(FindingKind.CRM_MODIFIED, A, Action.OVERWRITE)]
    f = found[0]
    assert (f.erp, f.ledger, f.crm, f.pushed, f.crm_id) == (d(5), d(5), d(9), d(5), "c1")
    reported = plan(
        [(A, d(5))], [(A, d(5))], [(A, CrmValue(d(9), "c1"))], [(A, d(5))], policies=REPORT
    )
    assert kinds(reported) == [(FindingKind.CRM_MODIFIED, A, Action.NONE)]


def test_missed_movement_is_drift_adjusted_by_default() -> None:
    found = plan([(A, d(7))], [(A, d(5))], [(A, CrmValue(d(5), "c1"))], [(A, d(5))])
    assert kinds(found) == [(FindingKind.ERP_LEDGER_DRIFT, A, Action.ADJUST)]
    reported = plan([(A, d(7))], [(A, d(5))], [], [], policies=REPORT)
    assert (FindingKind.ERP_LEDGER_DRIFT, A, Action.NONE) in kinds(reported)


def test_key_missing_from_erp_counts_as_zero() -> None:
    found = plan([], [(A, d(3))], [(A, CrmValue(d(3), "c1"))], [(A, d(3))])
    assert kinds(found) == [(FindingKind.ERP_LEDGER_DRIFT, A, Action.ADJUST)]
    assert plan([], [(A, d(0))], [(A, CrmValue(d(0), "c1"))], [(A, d(0))]) == []


def test_product_new_in_erp_is_missing_in_crm() -> None:
    found = plan([(B, d(4))], [(B, d(4))], [], [])
    assert kinds(found) == [(FindingKind.MISSING_IN_CRM, B, Action.CREATE)]
    assert kinds(plan([(B, d(4))], [(B, d(4))], [], [], policies=REPORT)) == [
        (FindingKind.MISSING_IN_CRM, B, Action.NONE)
    ]
    # nothing to show: a zero level needs no CRM record
    assert plan([], [(B, d(0))], [], []) == []


def test_crm_record_without_erp_or_ledger_is_orphan() -> None:
    found = plan([], [], [(C, CrmValue(d(2), "c9"))], [])
    assert kinds(found) == [(FindingKind.ORPHAN_IN_CRM, C, Action.NONE)]
    zero = Policies(orphan_in_crm="zero")
    assert kinds(plan([], [], [(C, CrmValue(d(2), "c9"))], [], policies=zero)) == [
        (FindingKind.ORPHAN_IN_CRM, C, Action.ZERO)
    ]
    # already zero: it agrees with the ERP (no stock anywhere), nothing to report
    assert kinds(plan([], [], [(C, CrmValue(d(0), "c9"))], [], policies=zero)) == []


def test_key_moving_during_reconcile_is_in_flux_not_a_conflict() -> None:
    found = plan(
        [(A, d(1)), (B, d(2))],
        [(A, d(9)), (B, d(2))],
        [(A, CrmValue(d(8), "c1")), (B, CrmValue(d(2), "c2"))],
        [(A, d(9)), (B, d(2))],
        in_flux={A},
    )
    assert kinds(found) == [(FindingKind.IN_FLUX, A, Action.NONE)]
    assert not found[0].is_conflict


def test_drift_and_crm_edit_on_one_key_give_two_findings() -> None:
    found = plan([(A, d(7))], [(A, d(5))], [(A, CrmValue(d(1), "c1"))], [(A, d(5))])
    assert {f.kind for f in found} == {FindingKind.ERP_LEDGER_DRIFT, FindingKind.CRM_MODIFIED}


def test_crm_already_showing_the_ledger_value_is_not_modified() -> None:
    # the binding lags (value pushed by another path): nothing to fix
    assert plan([(A, d(5))], [(A, d(5))], [(A, CrmValue(d(5), "c1"))], [(A, d(4))]) == []
    # never pushed (bound in bulk): C compared with L
    found = plan([(A, d(5))], [(A, d(5))], [(A, CrmValue(d(6), "c1"))], [])
    assert kinds(found) == [(FindingKind.CRM_MODIFIED, A, Action.OVERWRITE)]


def test_unsorted_input_fails_loudly() -> None:
    with pytest.raises(ValueError, match="not sorted"):
        plan([(B, d(1)), (A, d(1))], [], [], [])


def test_mixed_keys_merge_in_one_pass() -> None:
    found = plan(
        [(A, d(1)), (B, d(2)), (D, d(5))],
        [(A, d(1)), (B, d(3)), (D, d(5))],
        [(A, CrmValue(d(1), "1")), (C, CrmValue(d(4), "3")), (D, CrmValue(d(5), "4"))],
        [(A, d(1)), (D, d(5))],
    )
    assert kinds(found) == [
        (FindingKind.ERP_LEDGER_DRIFT, B, Action.ADJUST),
        (FindingKind.MISSING_IN_CRM, B, Action.CREATE),
        (FindingKind.ORPHAN_IN_CRM, C, Action.NONE),
    ]


def test_hundred_thousand_keys_stream_through() -> None:
    n = 100_000
    keys = [StockKey(f"S{i:06d}", "W") for i in range(n)]
    erp = ((k, Decimal(i % 50)) for i, k in enumerate(keys))
    ledger = ((k, Decimal(i % 50) + (1 if i == 77 else 0)) for i, k in enumerate(keys))
    crm = ((k, CrmValue(Decimal(i % 50), str(i))) for i, k in enumerate(keys))
    pushed = ((k, Decimal(i % 50)) for i, k in enumerate(keys))
    found = plan(erp, ledger, crm, pushed)
    assert kinds(found) == [(FindingKind.ERP_LEDGER_DRIFT, keys[77], Action.ADJUST)]


def two_places(qty: Decimal) -> Decimal:
    return qty.quantize(Decimal("0.01"))  # half-even, like a 2-dp CRM field


@pytest.mark.parametrize(
    ("crm", "in_sync"),
    [("139.62", True), ("139.63", True), ("139.61", False), ("139.625", True), ("140", False)],
)
def test_the_crm_is_compared_at_its_precision(crm: str, in_sync: bool) -> None:
    # ledger 139.625, last pushed as the CRM showed it (139.62)
    found = plan(
        [(A, d("139.625"))],
        [(A, d("139.625"))],
        [(A, CrmValue(d(crm), "c1"))],
        [(A, d("139.62"))],
        shown=two_places,
    )
    assert kinds(found) == ([] if in_sync else [(FindingKind.CRM_MODIFIED, A, Action.OVERWRITE)])


def test_a_crm_holding_values_exactly_is_compared_exactly() -> None:
    found = plan(
        [(A, d("139.625"))],
        [(A, d("139.625"))],
        [(A, CrmValue(d("139.62"), "c1"))],
        [(A, d("139.625"))],
    )
    assert kinds(found) == [(FindingKind.CRM_MODIFIED, A, Action.OVERWRITE)]


def test_precision_applies_to_the_crm_side_only() -> None:
    # the ERP and the ledger differ in the third decimal: that is drift, at full precision
    found = plan(
        [(A, d("139.626"))],
        [(A, d("139.625"))],
        [(A, CrmValue(d("139.62"), "c1"))],
        [(A, d("139.62"))],
        shown=two_places,
    )
    assert kinds(found) == [(FindingKind.ERP_LEDGER_DRIFT, A, Action.ADJUST)]


@pytest.mark.parametrize(
    ("crm", "qty", "expected"),
    [
        ("8", "7.5", True),
        ("7", "7.5", True),
        ("8", "8.5", True),
        ("9", "8.5", True),
        ("8", "8.49", True),
        ("9", "8.49", False),
        ("8", "8", True),
        ("8.0", "8", True),
    ],
)
def test_shows_accepts_any_rounding_within_half_a_unit(crm: str, qty: str, expected: bool) -> None:
    def no_places(q: Decimal) -> Decimal:
        return q.quantize(Decimal(1))

    assert shows(d(crm), d(qty), no_places) is expected


def test_two_records_for_one_key_are_a_duplicate_reported_by_default() -> None:
    extra = CrmRecord("c2", d(7))
    crm = [(A, CrmValue(d(5), "c1", (extra,)))]
    found = plan([(A, d(5))], [(A, d(5))], crm, [(A, d(5))])
    assert kinds(found) == [(FindingKind.DUPLICATE_IN_CRM, A, Action.NONE)]
    f = found[0]
    assert (f.crm, f.crm_id, f.extras) == (d(5), "c1", (extra,))
    assert f.duplicates_json() == [{"crm_id": "c2", "crm": "7"}]
    fix = Policies(duplicate_in_crm="invalidate_extras")
    assert kinds(plan([(A, d(5))], [(A, d(5))], crm, [(A, d(5))], policies=fix)) == [
        (FindingKind.DUPLICATE_IN_CRM, A, Action.INVALIDATE)
    ]


def test_a_duplicate_key_is_also_compared_through_the_record_kept() -> None:
    """The kept record was edited too, and an orphan key has duplicates: both kinds show."""
    crm = [
        (A, CrmValue(d(9), "c1", (CrmRecord("c2", d(5)),))),
        (B, CrmValue(d(4), "c3", (CrmRecord("c4", d(4)), CrmRecord("c5", d(0))))),
    ]
    found = plan([(A, d(5))], [(A, d(5))], crm, [(A, d(5))])
    assert kinds(found) == [
        (FindingKind.DUPLICATE_IN_CRM, A, Action.NONE),
        (FindingKind.CRM_MODIFIED, A, Action.OVERWRITE),
        (FindingKind.DUPLICATE_IN_CRM, B, Action.NONE),
        (FindingKind.ORPHAN_IN_CRM, B, Action.NONE),
    ]
    assert [r.crm_id for r in found[2].extras] == ["c4", "c5"]


def test_an_edit_of_available_stock_alone_is_crm_available_modified() -> None:
    """Real stock as written, available edited by a person: its own kind (reservations known)."""

    def static(key: StockKey) -> Decimal:
        return d(3) if key == A else d(0)

    crm = [(A, CrmValue(d(10), "c1", available=d(4))), (B, CrmValue(d(5), "c2", available=d(5)))]
    levels = [(A, d(10)), (B, d(5))]
    found = plan(levels, levels, crm, levels, figures=FigureCheck(static))
    assert kinds(found) == [(FindingKind.CRM_AVAILABLE_MODIFIED, A, Action.OVERWRITE)]
    f = found[0]
    assert (f.erp, f.ledger, f.crm, f.pushed, f.crm_id) == (None, d(7), d(4), d(7), "c1")
    # 10 − 3 = 7 is what stocksync writes: in sync; without figures, not compared
    crm[0] = (A, CrmValue(d(10), "c1", available=d(7)))
    assert plan(levels, levels, crm, levels, figures=FigureCheck(static)) == []
    crm[0] = (A, CrmValue(d(10), "c1", available=d(4)))
    assert plan(levels, levels, crm, levels) == []


def test_available_is_compared_at_its_own_fields_precision() -> None:
    """Real stock holds 2 decimals, available whole units (another tenant's describe):
    a CRM available of 7 for a ledger 7.4 is how that field shows it, not an edit."""

    def whole(q: Decimal) -> Decimal:
        return q.quantize(Decimal(1))

    crm = [(A, CrmValue(d("7.4"), "c1", available=d(7)))]
    levels = [(A, d("7.4"))]
    at_whole = FigureCheck(available=whole)
    assert plan(levels, levels, crm, levels, shown=two_places, figures=at_whole) == []
    at_cents = FigureCheck(available=two_places)
    found = plan(levels, levels, crm, levels, shown=two_places, figures=at_cents)
    assert kinds(found) == [(FindingKind.CRM_AVAILABLE_MODIFIED, A, Action.OVERWRITE)]
