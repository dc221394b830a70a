"""The book's table of contents, its MyST sources and the executed reference notebooks agree."""

import ast
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


def _stored_and_loaded(source: str) -> tuple[set[str], set[str]]:
    """The names a cell binds (assignments, imports, definitions) and the names it reads."""
    stored, loaded = set(), set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name):
            (stored if isinstance(node.ctx, ast.Store) else loaded).add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            stored.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            stored.add(node.name)
    return stored, loaded


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_cells_that_make_test_skips_feed_no_cell_it_runs(chapter):
    """`make test` (nbval) skips the cells tagged nbval-skip (long, printed, not checked); `make book` runs
    them.  Then no cell that nbval runs may read a name that only a skipped cell set, and no skipped cell
    may be a checked one: the checks must be the same whether the skipped cells ran or not."""
    source = jupytext.read(ROOT / f"{chapter}.md")
    from_skipped: set[str] = set()
    for cell in (c for c in source.cells if c.cell_type == "code"):
        tags = cell.metadata.get("tags", [])
        stored, loaded = _stored_and_loaded(cell.source)
        if "nbval-skip" in tags:
            assert "nbval-check-output" not in tags, f"{chapter}: a checked cell is skipped"
            from_skipped |= stored
        else:
            read = sorted((loaded - stored) & from_skipped)  # a name bound in the cell is its own
            assert not read, f"{chapter}: a cell that make test runs reads {read}, set by a skipped cell"
            from_skipped -= stored


def test_the_execution_cache_key_follows_the_data_but_not_the_finders_stored_models(tmp_path, monkeypatch):
    """`make book` reruns the chapters when data/ changes; an `invert` call storing the finder's models
    there (fitted from the data, checked when read) must not make it rerun them."""
    from analysis import chapters

    for name in ("analysis/a.py", "data/hyperparameters.json", "requirements.txt"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(name)
    monkeypatch.setattr(chapters, "ROOT", tmp_path)
    key = chapters.source_key()
    (tmp_path / "data" / "finder_models.typical.pickle.gz").write_bytes(b"models")
    assert chapters.source_key() == key
    (tmp_path / "data" / "hyperparameters.json").write_text("{}")
    assert chapters.source_key() != key
