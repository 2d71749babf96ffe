"""The ``stocksync`` command line: ``app`` (shared options and helpers), one module per
group of commands, and ``main`` (the entry point that registers them all)."""
