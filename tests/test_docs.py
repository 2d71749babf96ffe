"""The docs a clone has stay true to the tree: the module layout in docs/architecture.md
names every core module, every path it names exists, and nothing links out of the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURE = ROOT / "docs" / "architecture.md"


def layout_paths() -> list[str]:
    """The first column of the module layout table (§2.1): a file or a folder (ending in /)."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    table = text.split("### 2.1 Module layout", 1)[1].split("\n### ", 1)[0]
    return re.findall(r"^\| \**`([^`]+)`\**", table, re.MULTILINE)


def test_every_path_in_the_layout_exists() -> None:
    paths = layout_paths()
    assert len(paths) > 40
    assert [p for p in paths if not (ROOT / p).exists()] == []


def test_every_core_module_has_a_row() -> None:
    """A module added, moved or split under sync/ needs its row (a folder row covers all)."""
    rows = layout_paths()
    folders = tuple(p for p in rows if p.endswith("/") and p != "sync/")
    modules = sorted(
        str(path.relative_to(ROOT))
        for path in (ROOT / "sync").rglob("*.py")
        if path.name != "__init__.py"
    )
    missing = [m for m in modules if m not in rows and not m.startswith(folders)]
    assert missing == []


def test_every_connector_folder_has_a_row() -> None:
    rows = set(layout_paths())
    connectors = sorted(
        f"connectors/{p.name}/"
        for p in (ROOT / "connectors").iterdir()
        if (p / "__init__.py").exists()
    )
    assert [c for c in connectors if c not in rows] == []


def links(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return re.findall(r"\]\(([^)]+)\)", text)


def test_readme_and_docs_link_only_to_files_a_clone_has() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken: list[str] = []
    for page in pages:
        for target in links(page):
            if target.startswith(("http://", "https://", "#")):
                continue
            file = target.split("#", 1)[0]
            resolved = (page.parent / file).resolve()
            if not resolved.is_relative_to(ROOT) or not resolved.exists():
                broken.append(f"{page.name}: {target}")
        text = page.read_text(encoding="utf-8")
        for outside in ("../shared", "DESIGN.md", "design-notes.md", "/work/"):
            if outside in text:
                broken.append(f"{page.name}: mentions {outside}")
    assert broken == []


def test_the_readme_links_the_architecture() -> None:
    assert "(docs/architecture.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
