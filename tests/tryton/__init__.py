"""Tests of the Tryton connector, partly against a real trytond (see server.py)."""
