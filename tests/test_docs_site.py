"""The documentation site (properdocs.yml, ADR 0030): it builds strict, a broken link or anchor fails the build,
every alarm's and tamper alert's runbook link lands on a section of the built site, and the decision index lists
every record."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tavari_dr.core.config import load_environment
from tests.conftest import ROOT, cdk_context

CONFIG = ROOT / "properdocs.yml"
PROPERDOCS = Path(sys.executable).with_name("properdocs")


def build(config: Path, site_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(PROPERDOCS), "build", "--strict", "-f", str(config), "-d", str(site_dir)],
                          capture_output=True, text=True, timeout=300)


class _Ids(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.ids.update(value for name, value in attrs if name == "id" and value)


def ids_of(page: Path) -> set[str]:
    parser = _Ids()
    parser.feed(page.read_text())
    return parser.ids


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    site_dir = tmp_path_factory.mktemp("site")
    done = build(CONFIG, site_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    return site_dir


def _strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def test_every_runbook_link_of_prod_is_a_section_of_the_built_site(prod, site):
    """Alarm descriptions and the tamper rules' alerts link monitoring.runbook_url#<id>: that URL is a page of
    the published site (site_url) and <id> an element of its built HTML."""
    runbook_url = load_environment(cdk_context(), "prod").monitoring.runbook_url
    # properdocs.yml names a Python callable (the slugify), which a safe YAML loader refuses: read the one key.
    site_url = re.search(r"^site_url: (\S+)$", CONFIG.read_text(), re.M).group(1)
    assert runbook_url.startswith(site_url), f"monitoring.runbook_url {runbook_url} is not on the site {site_url}"
    page = site / runbook_url.removeprefix(site_url) / "index.html"
    assert page.is_file(), f"{runbook_url} is no page of the built site"
    present = ids_of(page)
    link = re.compile(re.escape(runbook_url) + r"#([A-Za-z0-9_-]+)")
    linked = {m for template in prod.templates.values() for text in _strings(template) for m in link.findall(text)}
    assert len(linked) >= 30 and {"backup-age", "tampering-keys", "break-glass"} <= linked
    assert sorted(linked - present) == []


def test_a_broken_anchor_or_link_fails_the_build(tmp_path):
    """The strict check is real: one link to an anchor no page has, or to a page that does not exist, and the build
    fails naming it."""
    for broken in ("[x](alarms.md#no-such-section)", "[x](no-such-page.md)"):
        docs = tmp_path / broken[5:10] / "docs"
        shutil.copytree(ROOT / "docs", docs)
        runbook = docs / "runbooks" / "escalation.md"
        runbook.write_text(runbook.read_text() + f"\n{broken}\n")
        config = docs.parent / "properdocs.yml"
        config.write_text(CONFIG.read_text())
        done = build(config, docs.parent / "site")
        assert done.returncode != 0
        assert broken[4:-1].split("#")[0] in done.stdout + done.stderr


def test_the_decision_index_lists_every_record():
    index = (ROOT / "docs" / "decisions" / "README.md").read_text()
    records = sorted(p.name for p in (ROOT / "docs" / "decisions").glob("[0-9][0-9][0-9][0-9]-*.md"))
    assert "0000-template.md" in records
    assert [r for r in records if f"]({r})" not in index] == []
