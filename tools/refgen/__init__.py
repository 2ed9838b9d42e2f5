"""The generated references (docs/reference/): one entry point, `python -m tools.refgen` (`make refs`);
`--check` exits 1 naming each stale file. tests/test_references.py regenerates them in memory and compares.

The configuration and CLI pages come from the code alone; the alarm and output pages from the synthesized
templates of every environment in cdk.json (each synthesized once per run)."""

from __future__ import annotations

from pathlib import Path

from tools.refgen import alarms, capabilities, cli, configuration, outputs
from tools.refgen.templates import Templates

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = Path("docs/reference")
PAGES = ("configuration.md", "cli.md", "alarms.md", "outputs.md", "capabilities.md")


def render(by_env: dict[str, Templates]) -> dict[Path, str]:
    """Every generated page (path relative to the repository root) from the templates of each environment."""
    return {
        REFERENCE / "configuration.md": configuration.render(),
        REFERENCE / "cli.md": cli.render(),
        REFERENCE / "alarms.md": alarms.render(by_env),
        REFERENCE / "outputs.md": outputs.render(by_env),
        REFERENCE / "capabilities.md": capabilities.render(),
    }


def stale(pages: dict[Path, str], root: Path) -> list[Path]:
    """The committed pages that differ from ``pages`` (or are missing)."""
    return [path for path, content in pages.items()
            if not (root / path).is_file() or (root / path).read_text() != content]
