"""How reconcile compares one CRM figure with what stocksync wrote or would write. Pure.

A CRM stock record holds three figures: real stock (on hand), available and
blocked (reserved); stocksync writes real = L, available = L − r and blocked =
the difference of the two as shown, where r is the key's reserved stock (the
ERP's figure stored by the last cycle plus the static overlay). Each figure is
compared at its own field's precision (``CrmSink.shown_level``,
``CrmSink.shown_reserved``), so a value the CRM can only hold rounded is not an edit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from sync.model import StockKey

#: a quantity as the CRM shows it (``CrmSink.shown_level``), e.g. 139.625 → 139.62
Shown = Callable[[Decimal], Decimal]
#: the blocked figure the CRM shows once (on hand, reserved) is written (``CrmSink.shown_reserved``)
ShownReserved = Callable[[Decimal, Decimal], Decimal]
#: the config's static reservation of a key (``push.reservations``), added to the ERP's figure
Static = Callable[[StockKey], Decimal]


def exact(qty: Decimal) -> Decimal:
    """A CRM that holds every quantity exactly."""
    return qty


def derived(on_hand: Decimal, reserved: Decimal) -> Decimal:
    """A CRM that holds every quantity exactly: blocked is the reservation itself."""
    return reserved


def no_static(key: StockKey) -> Decimal:
    return Decimal(0)


def shows(crm: Decimal, qty: Decimal, shown: Shown = exact) -> bool:
    """Does a CRM value ``crm`` show ``qty`` at the CRM field's precision?

    Yes when it is the value stocksync writes (``shown``: half-even, 139.625 →
    139.62); and, when that rounds, also any value within half a unit of the
    field's last place — 139.63 is a correct rounding of 139.625 too (half-up, as
    a person or another tool may round), so it is not a CRM edit.
    """
    if crm == qty:  # the common case, without asking the sink
        return True
    written = shown(qty)
    if crm == written:
        return True
    if written == qty:
        return False
    exponent = written.as_tuple().exponent
    if not isinstance(exponent, int):
        return False
    return abs(crm - qty) <= Decimal(5).scaleb(exponent - 1)


@dataclass(frozen=True, slots=True)
class FigureCheck:
    """How to compare a CRM record's available and blocked figures.

    ``static``: the key's static reservation; ``available``: available stock as the
    CRM's available field shows it; ``reserved``: the blocked figure the CRM shows
    once (on hand, reserved) is written — stocksync derives it from the rounded
    real and available, then rounds it to the blocked field's own places
    (Fxiaoke ``mapping.level_fields``).
    """

    static: Static = no_static
    available: Shown = exact
    reserved: ShownReserved = derived
    #: keys with a write still owed (an outbox row): a reserved figure changed since the
    #: last push shows in the CRM as the old one until that write lands; not an edit
    owed: frozenset[StockKey] = frozenset()


def available_edited(
    crm: Decimal, on_hand: tuple[Decimal, ...], reserved: Decimal, check: FigureCheck
) -> bool:
    """Does the CRM's available figure show none of ``on_hand`` − ``reserved``?

    ``on_hand``: the figures stocksync last wrote (P) and would write now (L).
    """
    return not any(shows(crm, q - reserved, check.available) for q in on_hand)


def reserved_edited(
    crm: Decimal, on_hand: tuple[Decimal, ...], reserved: Decimal, check: FigureCheck
) -> bool:
    """Does the CRM's blocked figure show ``reserved`` as stocksync writes it for none of
    ``on_hand``? Accepted: the written figure itself (derived from the rounded real and
    available), or ``reserved`` rounded another way within half a unit of its last place.
    """
    if crm == reserved:
        return False
    return not any(shows(crm, reserved, _always(check.reserved(q, reserved))) for q in on_hand)


def _always(written: Decimal) -> Shown:
    """``shows``'s rounding when the written figure is known already."""

    def shown(qty: Decimal) -> Decimal:
        return written

    return shown
