"""Demand forecast and reorder plan (issue 20).

``model`` holds the values every part shares (no third-party imports); the
forecasting itself needs the ``stocksync[forecast]`` extra (statsforecast).
"""
