"""The documentation stays usable: README.md is a front page, every relative link in README.md
and docs/ reaches a file (and a heading, where it names one), and no file of the project cites a
file that is not in the repository."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FRONT_PAGE_LINES = 160
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# The reference files the project was built from live outside the repository.
OUTSIDE_CITATION = re.compile(r"\b(SPEC|DESIGN|STYLE)\.md\b|/work/shared")


def pages() -> list[Path]:
    docs = ROOT / "docs"
    return [ROOT / "README.md"] + (sorted(docs.glob("*.md")) if docs.is_dir() else [])


def anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to -."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    in_code = False
    found = set()
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            found.add(anchor(line.lstrip("#")))
    return found


def broken_links(page: Path) -> list[str]:
    """'target (why)' for each relative link of ``page`` that leads nowhere."""
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue                      # http(s):, mailto: - not checked offline
        path, _, fragment = target.partition("#")
        destination = (page.parent / path).resolve() if path else page
        if not destination.exists():
            broken.append(f"{target} (no such file)")
        elif fragment and destination.suffix == ".md" and fragment not in anchors(destination):
            broken.append(f"{target} (no such heading)")
    return broken


def test_readme_is_a_front_page():
    assert len((ROOT / "README.md").read_text().splitlines()) <= FRONT_PAGE_LINES


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.name)
def test_every_relative_link_leads_somewhere(page):
    assert broken_links(page) == []


def project_text_files() -> list[Path]:
    """Source, tests, docs, presets, results' text files, CI scripts and packaging, this file
    excepted (it spells the pattern out)."""
    suffixes = {".py", ".md", ".yaml", ".yml", ".toml", ".sh", ".cfg", ".txt", ".cu", ".csv"}
    places = [ROOT / name for name in ("lae_core", "bench", "tests", "docs", "results", ".ci")]
    files = [path for place in places if place.is_dir() for path in place.rglob("*")
             if path.is_file() and (path.suffix in suffixes or place.name == ".ci")]
    files += [ROOT / name for name in ("README.md", "pyproject.toml", "setup.py")
              if (ROOT / name).is_file()]
    return [path for path in files if path != Path(__file__).resolve()
            and "runs" not in path.relative_to(ROOT).parts]


def test_no_file_cites_a_file_outside_the_repository():
    hits = [f"{path.relative_to(ROOT)}:{number}" for path in project_text_files()
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
            if OUTSIDE_CITATION.search(line)]
    assert hits == []


def test_the_link_checker_sees_a_broken_file_and_a_broken_heading(tmp_path):
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# A heading (`with/code.py`)\n")
    page.write_text("[ok](other.md#a-heading-withcodepy) [gone](missing.md) "
                    "[bad](other.md#nowhere) [web](https://example.org)\n")
    assert broken_links(page) == ["missing.md (no such file)",
                                  "other.md#nowhere (no such heading)"]


def test_the_citation_rule_sees_a_citation():
    assert OUTSIDE_CITATION.search("the table of SPEC.md")
    assert not OUTSIDE_CITATION.search("--scheduler local:2")
