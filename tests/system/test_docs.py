"""The manual stays true: every relative link in the READMEs and docs/ resolves (anchors
included), every config example in docs/ is accepted as `tollway check` accepts a file,
`tollway schema` prints the schema the reference page was generated from, and the site
builds with `mkdocs build --strict`."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tollway.cli.schema import config_schema, render
from tollway.config.envsubst import substitute
from tollway.config.load import ConfigError
from tollway.config.schema import Config
from tollway.gateway.snapshot import check_buildable
from tollway.plugins.registry import PLUGIN_MODELS
from tollway.runtime.config_source import load_file

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
MARKDOWN = [ROOT / "README.md", ROOT / "benchmarks" / "README.md", *PAGES]

_FENCE = re.compile(r"^(```|~~~)[^\n]*\n.*?^\1[ \t]*$", re.M | re.S)
_CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)", re.S)
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.M)
_YAML_BLOCK = re.compile(r"^```ya?ml[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def prose(text: str) -> str:
    """``text`` without fenced code blocks and code spans, where links are not links."""
    return _CODE_SPAN.sub("", _FENCE.sub("", text))


def slug(heading: str) -> str:
    """A heading's anchor as Python-Markdown's toc (and so mkdocs) makes it."""
    explicit = re.search(r"\{#([^}\s]+)\}\s*$", heading)
    if explicit:
        return explicit.group(1)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text
    text = text.replace("`", "")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    for m in _HEADING.finditer(_FENCE.sub("", path.read_text(encoding="utf-8"))):
        base = slug(m.group(2))
        name, n = base, 0
        while name in found:  # a repeated heading gets _1, _2, … as the toc numbers them
            n += 1
            name = f"{base}_{n}"
        found.add(name)
    return found


def links(path: Path) -> list[str]:
    text = prose(path.read_text(encoding="utf-8"))
    return [m.group(1) for pattern in (_LINK, _REFERENCE) for m in pattern.finditer(text)]


@pytest.mark.parametrize("page", MARKDOWN, ids=rel)
def test_every_relative_link_resolves_inside_the_repository(page: Path) -> None:
    broken = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto:, …
            continue
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        if not dest.is_relative_to(ROOT):
            broken.append(f"{target}: outside the repository")
        elif not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {rel(dest)}")
    assert not broken, f"{rel(page)}: " + "; ".join(broken)


@pytest.mark.parametrize("page", MARKDOWN, ids=rel)
def test_nothing_refers_to_files_outside_the_repository(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    for name in ("../shared", "SPEC.md", "PERF-NOTES"):
        assert name not in text, f"{rel(page)} mentions {name}, which is not in the repository"
    # Nor the team's contract by its sections ("SPEC §5"): the reader has no such document.
    assert re.search(r"\bSPEC\b", text) is None, f"{rel(page)} refers to a SPEC the reader does not have"


def test_the_link_checker_finds_what_it_should() -> None:
    sample = (
        "See [a](docs/index.md), [b](../x.md#top 'title') and ![c](img.png).\n"
        "`[not](a-link.md)`\n```\n[nor](this.md)\n```\n[ref]: other.md\n"
    )
    assert [m.group(1) for m in _LINK.finditer(prose(sample))] == ["docs/index.md", "../x.md#top", "img.png"]
    assert [m.group(1) for m in _REFERENCE.finditer(prose(sample))] == ["other.md"]
    assert slug("Token reservations, and the worst-case overshoot") == "token-reservations-and-the-worst-case-overshoot"
    assert slug("`tollway usage`") == "tollway-usage"
    assert slug("Limits (`server:`)") == "limits-server"


def test_every_page_is_in_the_nav() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))

    def pages(node: Any) -> list[str]:
        if isinstance(node, str):
            return [node] if node.endswith(".md") else []
        if isinstance(node, dict):
            return [p for value in node.values() for p in pages(value)]
        if isinstance(node, list):
            return [p for item in node for p in pages(item)]
        return []

    in_nav = set(pages(config["nav"]))
    on_disk = {page.relative_to(DOCS).as_posix() for page in PAGES}
    assert on_disk - in_nav == set(), "add these pages to mkdocs.yml's nav"
    assert in_nav - on_disk == set(), "mkdocs.yml's nav names pages that do not exist"


# --- config examples ------------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    page: Path
    line: int
    text: str

    def __str__(self) -> str:
        return f"{rel(self.page)}:{self.line}"


CONFIG_KEYS = frozenset(Config.model_fields)


def _placeholders(text: str) -> dict[str, str]:
    return {name: f"placeholder-{name.lower()}" for name in _VARIABLE.findall(text)}


def is_config(text: str) -> bool:
    """A YAML block is a config example when its top level is a mapping with a key of
    the config file's (``server``, ``providers``, ``plugins``, …)."""
    try:
        parsed = yaml.safe_load(substitute(text, _placeholders(text)))
    except yaml.YAMLError:
        return True  # broken YAML in a config-looking block must fail, not be skipped
    return isinstance(parsed, dict) and bool(CONFIG_KEYS & set(parsed))


def config_examples() -> list[Example]:
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for m in _YAML_BLOCK.finditer(text):
            if is_config(m.group(1)):
                found.append(Example(page, text.count("\n", 0, m.start()) + 2, m.group(1)))
    return found


EXAMPLES = config_examples()


@pytest.mark.parametrize("example", EXAMPLES, ids=str)
def test_every_config_example_is_accepted(example: Example, tmp_path: Path) -> None:
    path = tmp_path / "tollway.yaml"
    path.write_text(example.text, encoding="utf-8")
    try:
        check_buildable(load_file(path, env=_placeholders(example.text)))  # what `tollway check` runs
    except ConfigError as exc:
        pytest.fail(f"{example}: `tollway check` refuses it:\n  " + "\n  ".join(exc.problems))


def test_every_plugin_page_has_a_checked_config_example() -> None:
    checked = {example.page for example in EXAMPLES}
    plugin_pages = [p for p in (DOCS / "plugins").glob("*.md") if p.name != "index.md"]
    assert len(plugin_pages) >= len(PLUGIN_MODELS)
    assert [rel(p) for p in plugin_pages if p not in checked] == []
    for name in PLUGIN_MODELS:
        assert (DOCS / "plugins" / f"{name}.md").exists(), f"plugin {name} has no page"


# --- the schema and the generated reference ---------------------------------------------


def test_tollway_schema_prints_the_config_files_json_schema() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tollway", "schema"], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    schema = json.loads(done.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(schema["properties"]) == set(Config.model_fields)
    assert {"server", "admin", "storage", "pricing", "providers", "routes", "plugins"} <= set(schema["properties"])
    mapping = schema["properties"]["plugins"]["items"]["discriminator"]["mapping"]
    assert set(mapping) == set(PLUGIN_MODELS)
    key_auth = schema["$defs"][mapping["key-auth"].rpartition("/")[2]]
    config_ref = key_auth["properties"]["defaultConfig"]["anyOf"][0]["$ref"]
    assert "keys" in schema["$defs"][config_ref.rpartition("/")[2]]["required"]
    # Deterministic: another process prints the same bytes as this one renders.
    assert done.stdout == render(config_schema(PLUGIN_MODELS))


@pytest.mark.parametrize("script", ["config_reference.py", "admin_api_reference.py"])
def test_the_generated_references_are_up_to_date(script: str) -> None:
    # The configuration reference (from the config schema) and the admin API reference
    # (from GET /openapi.json): a change to either source must be followed by its script.
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr + f"(run: .venv/bin/python scripts/{script})"


# --- the site ------------------------------------------------------------------------------


def test_mkdocs_builds_the_site_strictly(tmp_path: Path) -> None:
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("mkdocs-material is not installed, and CI must build the manual (pip install -e '.[test]')")
        pytest.skip("mkdocs-material is not installed (pip install -e '.[docs]')")
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (site / "index.html").exists()
    assert (site / "reference" / "config" / "index.html").exists()
