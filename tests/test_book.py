"""The book's table of contents, its MyST sources and the executed reference notebooks agree."""

from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
CHAPTERS = [TOC["root"]] + [c["file"] for c in TOC["chapters"]]


def test_every_chapter_source_is_in_the_toc():
    assert sorted(CHAPTERS) == sorted(str(p.relative_to(ROOT).with_suffix("")) for p in
                                      (ROOT / "book").glob("*.md"))


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_reference_notebook_matches_its_source_and_is_executed(chapter):
    """nbval executes the .ipynb: it must hold the .md's code, run, with outputs (`make notebooks`)."""
    source = jupytext.read(ROOT / f"{chapter}.md")
    reference = nbformat.read(ROOT / f"{chapter}.ipynb", as_version=4)
    code = [c.source for c in source.cells if c.cell_type == "code"]
    assert [c.source for c in reference.cells if c.cell_type == "code"] == code, \
        f"{chapter}.ipynb is stale: run `make notebooks`"
    tags = [c.metadata.get("tags", []) for c in source.cells if c.cell_type == "code"]
    assert [c.metadata.get("tags", []) for c in reference.cells if c.cell_type == "code"] == tags
    assert not any("NBVAL_CHECK_OUTPUT" in c for c in code), "mark checked cells with the tag, not a comment"
    checked = [c for c in reference.cells
               if c.cell_type == "code" and "nbval-check-output" in c.metadata.get("tags", [])]
    assert checked, f"{chapter} has no headline cell checked by nbval"
    for cell in checked:
        assert cell.execution_count and any(o.get("name") == "stdout" for o in cell.outputs), \
            f"{chapter}.ipynb has a checked cell without stored output"
