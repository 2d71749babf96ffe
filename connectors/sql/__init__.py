"""SQL ERP source: streams read straight from an ERP database (issue 18)."""
