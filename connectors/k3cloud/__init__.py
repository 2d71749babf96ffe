"""Kingdee K/3 Cloud (金蝶云星空) WebAPI: client, ErpSource, mapping and emulator."""
