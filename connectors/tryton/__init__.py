"""Tryton ERP source connector: JSON-RPC client, move classification and the ErpSource."""
