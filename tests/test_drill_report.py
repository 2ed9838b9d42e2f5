"""The drill's report pages (tavari_dr.drill.report, tavari_dr.drill.report_html), from a recorded drill: the
JSON a passing drill of prod wrote (tests/fixtures/drill/drill-report-prod.json, trimmed: two of its deployed
stacks, six of its commands in the evidence). The drill itself is not run here (tests/test_drill.py does)."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from html.parser import HTMLParser

import jsonschema
import pytest

from tavari_dr.core import evidence
from tavari_dr.drill import report, report_html
from tests.conftest import ROOT

FIXTURE = ROOT / "tests" / "fixtures" / "drill" / "drill-report-prod.json"
S1, S2 = "1 database corruption", "2 complete system failure"


def recorded() -> dict:
    return json.loads(FIXTURE.read_text())


def failed_at_restore() -> dict:
    """The same drill had scenario 1's restore refused (as --inject-fault corrupt-backup makes it): the drill
    stops there, the scenarios after it unplayed."""
    document = recorded()
    refused = "backup 20261208T021324Z-nightly: data/toc.dat: sha256 differs from the signed manifest (tampered)"
    step = "restore the database from the off-site backup"
    scenario = document["scenarios"][S1]
    scenario["steps"] = scenario["steps"][:3]
    scenario["steps"][-1].update(ok=False, detail=refused)
    for kind in ("rto_critical", "rto_non-critical", "rpo"):
        scenario[kind].update(met=False, failed_at=step)
    document["scenarios"] = {S1: scenario}
    last = next(i for i, s in enumerate(document["steps"]) if s["scenario"] == S1 and s["name"] == step)
    document["steps"] = document["steps"][:last + 1]
    document["steps"][-1].update(ok=False, detail=refused)
    document.update(passed=False, failures=[f"{S1}: {step}: {refused}"],
                    title=document["title"].replace("PASSED", "FAILED"))
    return document


def test_the_fixture_is_what_the_drill_writes():
    jsonschema.validate(recorded(), evidence.report_schema())


def test_the_html_page_is_sealed_with_the_markdown_and_the_json(tmp_path):
    report.write(recorded(), tmp_path)
    sums = (tmp_path / evidence.SUMS).read_text().splitlines()
    assert [line.split("  ", 1)[1] for line in sums] == ["drill-report.json", "drill-report.md", "drill-report.html"]
    subprocess.run(["sha256sum", "--check", "--quiet", evidence.SUMS], cwd=tmp_path, check=True)
    page = tmp_path / "drill-report.html"
    page.write_text(page.read_text().replace("11.9 min", "1.9 min"))
    assert subprocess.run(["sha256sum", "--check", "--quiet", evidence.SUMS], cwd=tmp_path,
                          capture_output=True).returncode == 1
    # A new run removes it with the drill's other files (a stale page never outlives its JSON).
    assert "drill-report.html" in report.FILES


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []
        self.styles = ""
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.styles += data


def test_the_page_fetches_nothing():
    """One file an auditor can open offline: no script, no stylesheet, font or image from anywhere."""
    parser = _Elements()
    parser.feed(report_html.render(recorded(), sealed_with=("drill-report.json", "drill-report.md")))
    tags = {tag for tag, _ in parser.found}
    assert not tags & {"script", "link", "img", "iframe", "object", "embed", "image", "use", "base"}
    hrefs = [attrs["href"] for _, attrs in parser.found if attrs.get("href")]
    assert hrefs and all(h.startswith("#") for h in hrefs)
    assert not any("src" in attrs for _, attrs in parser.found)
    assert "url(" not in parser.styles and "@import" not in parser.styles and "@font-face" not in parser.styles


def test_each_scenario_opens_with_its_summary_then_its_timeline():
    page = report_html.render(recorded(), sealed_with=("drill-report.json", "drill-report.md"))
    sections = page.split('<section class="scenario"')[1:]
    assert len(sections) == 4
    two = next(s for s in sections if f"<h2>{S2} " in s)
    summary = two[two.index('<div class="summary">'):two.index("<svg")]
    assert "Critical services are back in 22.2 min of the 1 h allowed (37 %); all services in 2 h 34 min of the 4 h " \
           "allowed (64 %)" in summary
    assert "Most of the time goes to “restore the invoice bucket into a new bucket”: 1 h 29 min, 58 % of the " \
           "total." in summary
    assert "Data lost: the last 1.3 s of writes (10 of the 30 probe transactions written across the failure), " \
           "against an RPO of 24 h" in summary
    assert two.index('class="timeline"') < two.index('class="rpo"')


def test_a_failed_scenario_says_so_and_is_drawn_red():
    page = report_html.render(failed_at_restore(), sealed_with=("drill-report.json", "drill-report.md"))
    assert "Failed at the step “restore the database from the off-site backup”" in page
    assert 'class="step-bar failed"' in page
    for name in ("2 complete system failure", "3 data breach", "4 region outage"):
        assert f"<h2>{name} <span class=\"badge FAILED\">NOT PLAYED</span></h2>" in page


def test_the_markdown_steps_table_has_short_cells_and_the_details_below():
    document = recorded()
    text = report.markdown(document)
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    steps = text[text.index("## Steps"):text.index("## Step details")]
    step_rows = [line for line in steps.splitlines() if line.startswith("| ")]
    assert len(step_rows) == len(document["steps"]) + len({s["scenario"] for s in document["steps"]})  # + headers
    # (was: one 9-column table, its detail cells cut at 300 characters and its command cells longer still)
    cells = [cell.strip() for line in step_rows for cell in line.strip("|").split(" | ")]
    longest_name = max(len(s["name"]) for s in document["steps"])
    assert max(len(c) for c in cells) <= longest_name and "`" not in steps
    assert all(len(line) < 200 for line in rows)
    details = text[text.index("## Step details"):]
    for number, step in enumerate(document["steps"], 1):
        assert f"{number}. **{step['scenario']}: {step['name']}**" in details
        assert step["detail"] in details  # whole, never cut
        for command in step["commands"]:
            assert f"`{command}`" in details


PROBE = """<pre id="measured"></pre><script>
const found = [...document.querySelectorAll("svg.timeline, svg.rpo")].map(svg => {
  const box = svg.getBoundingClientRect();
  const bars = [...svg.querySelectorAll(svg.classList.contains("timeline") ? "rect.step-bar" : "rect.rpo-bar")]
    .map(bar => { const b = bar.getBoundingClientRect(); return {left: b.left, right: b.right, width: b.width,
                                                                 fill: getComputedStyle(bar).fill}; });
  return {kind: svg.getAttribute("class"), scenario: svg.dataset.scenario, left: box.left, right: box.right,
          width: box.width, height: box.height, bars};
});
document.getElementById("measured").textContent = JSON.stringify(found);
</script>"""


def test_chromium_draws_one_timeline_per_scenario_with_its_bars(tmp_path):
    """The page as Chromium lays it out: per scenario a timeline whose step bars have width, inside the drawing,
    and a data-loss chart. (A copy of the page with a probe that measures the drawing; the report has no script.)"""
    browser = shutil.which("chromium")
    if browser is None:
        pytest.fail("chromium is missing: `make install` installs it (Debian's package chromium)")
    document = recorded()
    report.write(copy.deepcopy(document), tmp_path / "report")
    probe = tmp_path / "probe.html"
    probe.write_text((tmp_path / "report" / "drill-report.html").read_text().replace("</body>", PROBE + "</body>"))
    dumped = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={tmp_path / 'profile'}",
         "--window-size=1100,900", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=180, check=True).stdout
    measured = json.loads(dumped.split('<pre id="measured">', 1)[1].split("</pre>", 1)[0])
    timelines = [m for m in measured if m["kind"] == "timeline"]
    assert [t["scenario"] for t in timelines] == list(document["scenarios"])
    assert [m["scenario"] for m in measured if m["kind"] == "rpo"] == list(document["scenarios"])
    for drawn in measured:
        assert drawn["width"] > 300 and drawn["height"] > 50, drawn
        assert drawn["bars"], drawn
        for bar in drawn["bars"]:
            assert bar["width"] > 0 and drawn["left"] <= bar["left"] < bar["right"] <= drawn["right"], drawn
            assert bar["fill"] not in ("none", "rgba(0, 0, 0, 0)"), bar
    for timeline in timelines:
        steps = document["scenarios"][timeline["scenario"]]["steps"]
        assert len(timeline["bars"]) == len([s for s in steps if s["recovery"]])
