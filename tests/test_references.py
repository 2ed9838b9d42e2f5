"""The generated references (docs/reference/, `make refs`): each page regenerated in memory equals the committed
one (a stale page fails here, naming `make refs`), every page's tables are valid Markdown, every configuration
key says what it is, every command has an example that parses, every alarm's runbook section exists, and the
capability map names only what exists. Also `tavari-dr config show`, which prints what the configuration page
describes."""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from tavari_dr.cli import main as cli_main
from tavari_dr.cli.config import as_document, flatten
from tavari_dr.core import config as cfg
from tests.conftest import ROOT, alarm_runbook_sections, cdk_context
from tools import refgen
from tools.refgen import __main__ as refgen_main
from tools.refgen import alarms, capabilities, cli, configuration

STATIC = {"configuration.md": configuration.render, "cli.md": cli.render, "capabilities.md": capabilities.render}
FROM_TEMPLATES = ("alarms.md", "outputs.md")
STALE = "is stale: run `make refs` (python -m tools.refgen) and commit docs/reference/"


@pytest.fixture(scope="module")
def by_env(synthesized):
    """The templates of every cdk.json environment, from the session's one synth of each."""
    return {env: synthesized[env].templates for env in cdk_context()["environments"]}


def committed(page: str) -> str:
    return (ROOT / refgen.REFERENCE / page).read_text()


# --------------------------------------------------------------------------- the pages are current


@pytest.mark.parametrize("page", sorted(STATIC))
def test_page_from_the_code_is_current(page):
    assert STATIC[page]() == committed(page), f"docs/reference/{page} {STALE}"


@pytest.mark.parametrize("page", FROM_TEMPLATES)
def test_page_from_the_templates_is_current(page, by_env):
    assert refgen.render(by_env)[refgen.REFERENCE / page] == committed(page), f"docs/reference/{page} {STALE}"


def test_the_generator_writes_exactly_the_committed_pages():
    """Every page of docs/reference/ is generated: by this generator, or costs.md by benches/cost.py (its own
    staleness test: tests/test_cost.py)."""
    generated = {refgen.REFERENCE / page for page in refgen.PAGES} | {refgen.REFERENCE / "costs.md"}
    on_disk = {p.relative_to(ROOT) for p in (ROOT / refgen.REFERENCE).glob("*.md")}
    assert generated == on_disk


def test_check_exits_1_naming_the_stale_page_and_0_when_current(tmp_path, by_env, monkeypatch, capsys):
    """`python -m tools.refgen --check` over a copy of the repository's pages, one of them edited by hand."""
    shutil.copy(ROOT / "cdk.json", tmp_path / "cdk.json")
    shutil.copytree(ROOT / refgen.REFERENCE, tmp_path / refgen.REFERENCE)
    monkeypatch.setattr(refgen_main, "synthesize", lambda env, context, outdir: by_env[env])
    assert refgen_main.main(["--check"], root=tmp_path) == 0
    edited = tmp_path / refgen.REFERENCE / "configuration.md"
    edited.write_text(edited.read_text().replace("| `region` |", "| `region` (hand-edited) |"))
    assert refgen_main.main(["--check"], root=tmp_path) == 1
    assert capsys.readouterr().err.strip() == "docs/reference/configuration.md is stale: run `make refs`"
    assert refgen_main.main([], root=tmp_path) == 0  # regenerating puts it right
    assert refgen_main.main(["--check"], root=tmp_path) == 0


# --------------------------------------------------------------------------- valid Markdown tables

_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


def table_problems(markdown: str) -> list[str]:
    """Tables GFM would break: a row outside a table (a blank line inside one ends it, and the rest renders as
    text), a separator that does not follow the header, or a row whose cell count differs from the header's."""
    problems, lines = [], markdown.splitlines()
    in_code = False
    for i, line in enumerate(lines):
        if line.startswith("```"):
            in_code = not in_code
        if in_code or not line.startswith("|"):
            continue
        starts = i == 0 or not lines[i - 1].startswith("|")
        if starts and (i + 1 >= len(lines) or not re.fullmatch(r"\|(---\|)+", lines[i + 1])):
            problems.append(f"line {i + 1}: a table row with no header and separator under it: {line[:60]}")
            continue
        header = i
        while not (header == 0 or not lines[header - 1].startswith("|")):
            header -= 1
        if len(_UNESCAPED_PIPE.findall(line)) != len(_UNESCAPED_PIPE.findall(lines[header])):
            problems.append(f"line {i + 1}: cell count differs from the header's: {line[:60]}")
    return problems


def test_the_table_checker_finds_a_blank_line_inside_a_table_and_an_unescaped_pipe():
    good = "| a | b |\n|---|---|\n| 1 | x \\| y |\n"
    assert table_problems(good) == []
    assert table_problems(good + "\n| 2 | z |\n")  # the README's old configuration table had this
    assert table_problems("| a | b |\n|---|---|\n| 1 | x | y |\n")


@pytest.mark.parametrize("page", refgen.PAGES)
def test_every_table_of_the_page_is_valid_markdown(page):
    assert table_problems(committed(page)) == []


# --------------------------------------------------------------------------- what the pages are made of


def declared_keys():
    for path, cls in configuration.sections():
        for name, f in configuration.keys(cls):
            if f.metadata["rule"][0] != "section":  # a section is described by its class's docstring
                yield (f"{path}.{name}" if path else name), cls, f


def test_every_configuration_key_and_section_says_what_it_is():
    seen = 0
    for key, cls, f in declared_keys():
        seen += 1
        doc = f.metadata.get("doc") or ""
        assert len(doc.split()) >= 3 and doc.rstrip().endswith("."), f"{key}: no description (rule(..., doc=...))"
        assert configuration.summary(cls), f"{cls.__name__}: no docstring"
    assert seen >= 100  # every section was walked, the list items' keys too


def test_a_rule_the_reference_cannot_describe_fails_the_generator():
    with pytest.raises(KeyError, match="describe_rule"):
        configuration.describe_rule("new_rule", {})


def test_every_command_has_an_example_that_parses(tmp_path, monkeypatch):
    """Each example's arguments parse against its own command (options, choices, times, required ones): an
    example that names a removed option or a bad value fails here. Files an example names are made first."""
    monkeypatch.chdir(tmp_path)
    leaves = list(cli.leaves())
    assert len(leaves) >= 29, f"the walk found {len(leaves)} commands: it lost the lazily loaded ones"
    for path, command in leaves:
        _, examples = cli.split_help(command)
        assert examples, f"tavari-dr {' '.join(path)}: no Examples block in its help"
        for example in examples:
            words = shlex.split(example)
            assert words[:len(path) + 1] == ["tavari-dr", *path], example
            args = words[len(path) + 1:]
            for param in command.params:  # an existing file the example names
                if isinstance(param.type, click.Path) and param.type.exists:
                    for i, word in enumerate(args[:-1]):
                        if word in param.opts:
                            Path(args[i + 1]).touch()
            command.make_context(" ".join(["tavari-dr", *path]), args)


def test_every_alarm_links_a_runbook_section_that_exists(by_env):
    sections = {row["section"] for env in by_env for row in alarms.alarms(env, by_env[env])}
    assert sections and not sections - alarm_runbook_sections()


def test_the_capability_map_names_only_what_exists_and_every_runtime_folder():
    commands = {" ".join(path) for path, _ in cli.walk(cli.root())}
    assert list(capabilities.problems(commands)) == []


def test_the_capability_check_finds_a_missing_path_and_an_unmapped_folder(tmp_path, monkeypatch):
    text = capabilities.MAP.read_text().replace('runtime = ["tavari_dr/status/"]', 'runtime = ["tavari_dr/statuz/"]')
    moved = tmp_path / "capabilities.toml"
    moved.write_text(text)
    monkeypatch.setattr(capabilities, "MAP", moved)
    found = list(capabilities.problems({" ".join(p) for p, _ in cli.walk(cli.root())}))
    assert any("tavari_dr/statuz/ does not exist" in p for p in found), found
    assert "tavari_dr/status/ is in no capability's runtime" in found


# --------------------------------------------------------------------------- tavari-dr config show


def run(*args):
    return CliRunner().invoke(cli_main, ["config", "show", "--cdk-json", str(ROOT / "cdk.json"), *args])


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_config_show_prints_every_key_with_its_default_resolved(env):
    result = run("--env", env)
    assert result.exit_code == 0, result.output
    shown = dict(line.split(" = ", 1) for line in result.stdout.splitlines())
    keys = {key for key, _, _ in declared_keys() if "[]" not in key}
    assert set(shown) == keys
    config = cfg.load_from_file(env, ROOT / "cdk.json")
    assert json.loads(shown["changes.segment_seconds"]) == config.changes.segment_seconds  # a default, unset
    assert json.loads(shown["region"]) == config.region


def test_config_show_json_is_a_cdk_json_entry_the_loader_reads_back_to_the_same_configuration():
    result = run("--env", "prod", "--format", "json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)  # the CLI's one envelope (docs/decisions/0034)
    assert (answer["command"], answer["env"], answer["ok"], answer["errors"]) == ("config show", "prod", True, [])
    document = answer["result"]
    again = cfg.parse_environment("prod", document)
    assert again == cfg.load_from_file("prod", ROOT / "cdk.json")
    assert len(flatten(document)) == len(flatten(as_document(again)))


def test_config_show_refuses_an_unknown_environment_in_one_line():
    result = run("--env", "staging")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        'Error: env: "staging" is not a configured environment; choose one of dev, prod']


def test_config_show_refuses_a_bad_value_in_one_line_naming_the_key(tmp_path):
    context = json.loads((ROOT / "cdk.json").read_text())
    context["context"]["environments"]["dev"]["changes"] = {"segment_seconds": 1}
    bad = tmp_path / "cdk.json"
    bad.write_text(json.dumps(context))
    result = CliRunner().invoke(cli_main, ["config", "show", "--env", "dev", "--cdk-json", str(bad)])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "Error: environments.dev.changes.segment_seconds: 1 is not allowed; use a whole number >= 5"]


def test_config_show_imports_neither_boto3_nor_the_aws_facing_cli():
    """The module alone (the package's __init__ registers every group, so it is loaded by path here): the CLI
    contract's light module (tavari_dr.cli.envelope) and nothing that talks to AWS."""
    code = ("import importlib.util, sys\n"
            "spec = importlib.util.spec_from_file_location('config_show', 'tavari_dr/cli/config.py')\n"
            "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
            "print(sorted(m for m in sys.modules if m in ('boto3', 'botocore') or m.startswith('tavari_dr.cli')))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['tavari_dr.cli', 'tavari_dr.cli.envelope']"


def test_the_dataclass_document_has_every_section():
    """as_document keeps every section of EnvironmentConfig (a section dropped there would vanish silently)."""
    config = cfg.load_from_file("dev", ROOT / "cdk.json")
    assert set(as_document(config)) == {f.name for f in dataclasses.fields(cfg.EnvironmentConfig)} - {"name"}
