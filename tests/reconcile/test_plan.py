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
    ReservedValue,
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


# -- reserved and available: each figure its own kind --------------------------------
def reserved_of(*pairs: tuple[StockKey, str | None, str]) -> list[tuple[StockKey, ReservedValue]]:
    """The fifth stream: (key, the ERP's reserved or None, the stored reserved)."""
    return [(k, ReservedValue(None if e is None else d(e), d(s))) for k, e, s in pairs]


def test_an_erp_reservation_not_stored_yet_is_reserved_drift_stored_by_default() -> None:
    levels = [(A, d(10)), (B, d(5))]
    crm = [
        (A, CrmValue(d(10), "c1", available=d(10), reserved=d(0))),
        (B, CrmValue(d(5), "c2", available=d(3), reserved=d(2))),
    ]
    # A: reserved 4 in the ERP, nothing stored; B: stored 2, the ERP released it
    reserved = reserved_of((A, "4", "0"), (B, "0", "2"))
    found = plan(levels, levels, crm, levels, figures=FigureCheck(), reserved=reserved)
    assert kinds(found) == [
        (FindingKind.RESERVED_DRIFT, A, Action.STORE),
        (FindingKind.RESERVED_DRIFT, B, Action.STORE),
    ]
    a, b = found
    assert (a.erp, a.ledger, a.crm, a.pushed, a.crm_id) == (d(4), d(0), d(0), None, "c1")
    assert (b.erp, b.ledger, b.crm, b.pushed, b.crm_id) == (d(0), d(2), d(2), None, "c2")
    report = Policies(reserved_drift="report_only")
    found = plan(levels, levels, crm, levels, policies=report, reserved=reserved)
    assert kinds(found) == [
        (FindingKind.RESERVED_DRIFT, A, Action.NONE),
        (FindingKind.RESERVED_DRIFT, B, Action.NONE),
    ]


def test_a_reservation_on_a_key_without_stock_or_record_is_drift_too() -> None:
    """Reserved beyond on hand (the ERP allows it) on a key nothing else knows."""
    found = plan([], [], [], [], reserved=reserved_of((C, "3", "0")))
    assert kinds(found) == [(FindingKind.RESERVED_DRIFT, C, Action.STORE)]
    assert (found[0].erp, found[0].ledger, found[0].crm) == (d(3), d(0), None)


def test_an_erp_that_keeps_no_reservations_gives_no_reserved_drift() -> None:
    """erp None: nothing to compare, whatever is stored; available is compared with on hand."""
    levels = [(A, d(10))]
    crm = [(A, CrmValue(d(10), "c1", available=d(10), reserved=d(0)))]
    assert plan(levels, levels, crm, levels, figures=FigureCheck()) == []
    assert plan(levels, levels, [], [], reserved=reserved_of((A, None, "0"))) == [
        Finding(FindingKind.MISSING_IN_CRM, A, d(10), d(10), None, None, Action.CREATE)
    ]
    crm = [(A, CrmValue(d(10), "c1", available=d(9), reserved=d(0)))]
    found = plan(levels, levels, crm, levels, figures=FigureCheck())
    assert kinds(found) == [(FindingKind.CRM_AVAILABLE_MODIFIED, A, Action.OVERWRITE)]
    assert (found[0].ledger, found[0].crm) == (d(10), d(9))


def test_an_edit_of_blocked_stock_alone_is_crm_reserved_modified() -> None:
    levels = [(A, d(10)), (B, d(5))]
    reserved = reserved_of((A, "3", "3"), (B, "1", "1"))
    crm = [
        (A, CrmValue(d(10), "c1", available=d(7), reserved=d(8))),  # a person typed 8
        (B, CrmValue(d(5), "c2", available=d(4), reserved=d(1))),
    ]
    found = plan(levels, levels, crm, levels, figures=FigureCheck(), reserved=reserved)
    assert kinds(found) == [(FindingKind.CRM_RESERVED_MODIFIED, A, Action.OVERWRITE)]
    f = found[0]
    assert (f.erp, f.ledger, f.crm, f.pushed, f.crm_id) == (d(3), d(3), d(8), None, "c1")
    report = Policies(crm_reserved_modified="report_only")
    found = plan(
        levels, levels, crm, levels, policies=report, figures=FigureCheck(), reserved=reserved
    )
    assert kinds(found) == [(FindingKind.CRM_RESERVED_MODIFIED, A, Action.NONE)]


def test_the_static_overlay_is_part_of_what_stocksync_writes() -> None:
    """ERP reserved 3 stored, static 2 for A@W1: the CRM shows blocked 5 and available 5."""

    def static(key: StockKey) -> Decimal:
        return d(2) if key == A else d(0)

    levels = [(A, d(10))]
    reserved = reserved_of((A, "3", "3"))
    crm = [(A, CrmValue(d(10), "c1", available=d(5), reserved=d(5)))]
    assert plan(levels, levels, crm, levels, figures=FigureCheck(static), reserved=reserved) == []
    crm = [(A, CrmValue(d(10), "c1", available=d(7), reserved=d(3)))]  # the overlay lost
    found = plan(levels, levels, crm, levels, figures=FigureCheck(static), reserved=reserved)
    assert kinds(found) == [
        (FindingKind.CRM_RESERVED_MODIFIED, A, Action.OVERWRITE),
        (FindingKind.CRM_AVAILABLE_MODIFIED, A, Action.OVERWRITE),
    ]
    assert [(f.erp, f.ledger, f.crm) for f in found] == [(d(3), d(5), d(3)), (None, d(5), d(7))]


def test_each_figure_edit_has_its_own_policy() -> None:
    levels = [(A, d(10))]
    reserved = reserved_of((A, "3", "3"))
    crm = [(A, CrmValue(d(11), "c1", available=d(1), reserved=d(2)))]
    mixed = Policies(crm_modified="report_only", crm_available_modified="report_only")
    found = plan(
        levels, levels, crm, levels, policies=mixed, figures=FigureCheck(), reserved=reserved
    )
    assert kinds(found) == [
        (FindingKind.CRM_MODIFIED, A, Action.NONE),
        (FindingKind.CRM_RESERVED_MODIFIED, A, Action.OVERWRITE),
        (FindingKind.CRM_AVAILABLE_MODIFIED, A, Action.NONE),
    ]


def blocked_at_cents(on_hand: Decimal, reserved: Decimal) -> Decimal:
    """Fxiaoke's rule: real and available rounded half-even to 2 dp, blocked their difference."""
    return two_places(on_hand) - two_places(on_hand - reserved)


@pytest.mark.parametrize(
    ("crm", "in_sync"),
    [("0.00", True), ("0.01", True), ("0.015", True), ("0.02", False), ("0.1", False)],
)
def test_blocked_is_compared_as_stocksync_derives_it(crm: str, in_sync: bool) -> None:
    """On hand 0.125 reserved 0.01: real 0.12, available 0.115 → 0.12, blocked 0.00 is
    written; 0.01 (the reservation itself at 2 dp) is a correct figure too."""
    levels = [(A, d("0.125"))]
    check = FigureCheck(available=two_places, reserved=blocked_at_cents)
    crm_value = CrmValue(d("0.12"), "c1", available=d("0.12"), reserved=d(crm))
    found = plan(
        levels,
        levels,
        [(A, crm_value)],
        [(A, d("0.12"))],
        shown=two_places,
        figures=check,
        reserved=reserved_of((A, "0.01", "0.01")),
    )
    expected = [] if in_sync else [(FindingKind.CRM_RESERVED_MODIFIED, A, Action.OVERWRITE)]
    assert kinds(found) == expected


def test_a_key_in_flux_still_has_its_reserved_drift() -> None:
    """On hand moved while E was taken: compared next time; the reserved snapshot stands."""
    levels = [(A, d(10))]
    crm = [(A, CrmValue(d(9), "c1", available=d(1), reserved=d(0)))]
    found = plan(
        levels,
        levels,
        crm,
        levels,
        in_flux={A},
        figures=FigureCheck(),
        reserved=reserved_of((A, "4", "0")),
    )
    assert kinds(found) == [
        (FindingKind.IN_FLUX, A, Action.NONE),
        (FindingKind.RESERVED_DRIFT, A, Action.STORE),
    ]


def test_an_orphan_at_zero_with_available_stock_left_is_still_an_orphan() -> None:
    """Real 0 but available 0.25 (a person's edit): the record still shows stock."""
    zero = Policies(orphan_in_crm="zero")
    crm = [(C, CrmValue(d(0), "c9", available=d("0.25"), reserved=d(0)))]
    assert kinds(plan([], [], crm, [], policies=zero)) == [
        (FindingKind.ORPHAN_IN_CRM, C, Action.ZERO)
    ]
    crm = [(C, CrmValue(d(0), "c9", available=d(0), reserved=d(2)))]
    assert kinds(plan([], [], crm, [])) == [(FindingKind.ORPHAN_IN_CRM, C, Action.NONE)]
    crm = [(C, CrmValue(d(0), "c9", available=d(0), reserved=d(0)))]
    assert plan([], [], crm, [], policies=zero) == []


def test_a_key_with_reserved_stock_and_none_on_hand_is_not_an_orphan() -> None:
    """No stock anywhere, 1.5 reserved (static, or stored from the ERP): stocksync writes
    real 0, available −1.5. That record is in sync, not an orphan to zero; with no record
    the key is missing in the CRM; a record zeroed by someone is an available edit."""
    zero = Policies(orphan_in_crm="zero")

    def static(key: StockKey) -> Decimal:
        return d("1.5") if key == C else d(0)

    shown = [(C, CrmValue(d(0), "c9", available=d("-1.5"), reserved=d("1.5")))]
    assert plan([], [], shown, [], policies=zero, figures=FigureCheck(static)) == []
    stored = reserved_of((C, "1.5", "1.5"))
    assert plan([], [], shown, [], policies=zero, figures=FigureCheck(), reserved=stored) == []
    assert kinds(plan([], [], [], [], figures=FigureCheck(), reserved=stored)) == [
        (FindingKind.MISSING_IN_CRM, C, Action.CREATE)
    ]
    zeroed = [(C, CrmValue(d(0), "c9", available=d(0), reserved=d(0)))]
    assert kinds(plan([], [], zeroed, [], policies=zero, figures=FigureCheck(static))) == [
        (FindingKind.CRM_RESERVED_MODIFIED, C, Action.OVERWRITE),
        (FindingKind.CRM_AVAILABLE_MODIFIED, C, Action.OVERWRITE),
    ]
