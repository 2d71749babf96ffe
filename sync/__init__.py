"""stocksync: ERP → CRM stock synchronisation around a canonical movement ledger."""

__version__ = "0.1.0"
