"""Book-wide checks: the table of contents, stored outputs, and the chapter standard.

These read the committed files only; executing the notebooks is nbval's job
(`make nbval`) and building them the strict book build's (`make build-strict`).
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

import matgrad

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
NOTEBOOKS = sorted(BOOK.glob("*.ipynb"))


def _toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc.get("parts", toc.get("chapters", [])))
    return files


def _resolve(entry: str) -> list[Path]:
    return [p for p in (ROOT / f"{entry}.ipynb", ROOT / f"{entry}.md") if p.exists()]


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def test_every_toc_entry_exists():
    missing = [entry for entry in _toc_files() if not _resolve(entry)]
    assert not missing, f"_toc.yml lists files that do not exist: {missing}"


def test_every_page_is_in_the_toc():
    listed = {entry for entry in _toc_files()}
    pages = sorted(BOOK.glob("*.ipynb")) + sorted(BOOK.glob("*.md"))
    orphans = [str(p.relative_to(ROOT)) for p in pages if str(p.relative_to(ROOT).with_suffix("")) not in listed]
    assert not orphans, f"pages under book/ missing from _toc.yml: {orphans}"


def test_there_are_chapters():
    assert len(NOTEBOOKS) >= 2, "book/ should hold the chapter notebooks"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_outputs(path):
    """Every code cell was executed and stored; only raises-exception cells hold errors."""
    problems = []
    for i, cell in enumerate(_cells(path)):
        if cell["cell_type"] != "code" or not _source(cell).strip():
            continue
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.get("execution_count") is None:
            problems.append(f"cell {i} was never executed (no stored output for nbval to compare)")
        has_error = any(o.get("output_type") == "error" for o in cell.get("outputs", []))
        if "raises-exception" in tags and not has_error:
            problems.append(f"cell {i} is tagged raises-exception but stores no error")
        if has_error and "raises-exception" not in tags:
            problems.append(f"cell {i} stores an error")
    assert not problems, f"{path.name}: " + "; ".join(problems)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_execution_order_is_linear(path):
    """Cells were run top to bottom in one fresh kernel (1, 2, 3, ...)."""
    counts = [c["execution_count"] for c in _cells(path) if c["cell_type"] == "code" and _source(c).strip()]
    assert counts == list(range(1, len(counts) + 1)), f"{path.name}: execution counts {counts}"


# Reference pages that are notebooks but not chapters: they have no exercises, theorems or
# figures to hold to the chapter standard. book/rules.ipynb (the table of every rule, each row
# checked against autograd as it runs) is tested by tests/test_rules.py instead.
REFERENCE_PAGES = {"rules.ipynb"}
CHAPTERS = [p for p in NOTEBOOKS if p.name not in REFERENCE_PAGES]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_standard(path):
    """The 'every chapter' standard of the book's design, as far as a file can show it."""
    cells = _cells(path)
    first = _source(cells[0])
    assert cells[0]["cell_type"] == "markdown" and re.match(r"\(ch-[a-z-]+\)=\s*\n# \S", first), (
        f"{path.name}: the first cell must be a label (ch-...)= and a title"
    )
    markdown = "\n".join(_source(c) for c in cells if c["cell_type"] == "markdown")
    # Plain or gated ({exercise-start}/{solution-start}) directives, in ``` or ::: fences.
    exercises = re.findall(r"(?:```|:::)\{exercise(?:-start)?\}", markdown)
    solutions = re.findall(r"(?:```|:::)\{solution(?:-start)?\}", markdown)
    assert len(exercises) >= 3, f"{path.name}: {len(exercises)} exercises, at least 3 expected"
    assert len(solutions) >= len(exercises), f"{path.name}: an exercise has no solution"
    assert "{cite" in markdown, f"{path.name}: cites no source"
    assert "```{prf:" in markdown, f"{path.name}: no theorem/proof block"
    assert re.search(r"\{eq\}`", markdown), f"{path.name}: no labelled equation is cited"
    pngs = sum(
        "image/png" in o.get("data", {})
        for c in cells
        if c["cell_type"] == "code"
        for o in c.get("outputs", [])
    )
    assert pngs >= 1, f"{path.name}: no figure"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_do_not_redefine_library_functions(path):
    """One copy of the code: a chapter never defines a function that matgrad exports."""
    public = set(matgrad.__all__)
    redefined = []
    for cell in _cells(path):
        if cell["cell_type"] != "code":
            continue
        source = "\n".join(line for line in _source(cell).splitlines() if not line.lstrip().startswith(("%", "!")))
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in public:
                redefined.append(node.name)
    assert not redefined, f"{path.name} redefines matgrad functions: {redefined}"


def _documented_names() -> set[str]:
    api = (BOOK / "api.md").read_text()
    return set(re.findall(r"\.\. auto(?:function|class|exception):: matgrad\.(\w+)", api))


def test_api_page_documents_every_public_name():
    missing = sorted(set(matgrad.__all__) - {"__version__"} - _documented_names())
    assert not missing, f"book/api.md does not document: {missing}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_chapters_use_only_documented_names(path):
    """A chapter that uses matgrad.X (or imports X from matgrad) needs X on the API page."""
    documented = _documented_names()
    used = set()
    for cell in _cells(path):
        if cell["cell_type"] != "code":
            continue
        src = _source(cell)
        for block in re.findall(r"from matgrad(?:\.\w+)? import (\([\w\s,]+\)|[\w ,]+)", src):
            names = block.strip("()").replace("\n", ",").split(",")
            used.update(name.split(" as ")[0].strip() for name in names if name.strip())
        used.update(re.findall(r"\bmatgrad\.(\w+)", src))
    modules = {"gradcheck", "jacobian", "matmul", "einsum", "symbolic", "rnn"}
    undocumented = sorted(used - documented - modules - {"__version__"})
    assert not undocumented, f"{path.name} uses names the API page does not document: {undocumented}"


def test_public_functions_have_numpydoc_docstrings():
    lacking = []
    for name in matgrad.__all__:
        obj = getattr(matgrad, name)
        if not callable(obj) or isinstance(obj, type):
            continue  # result classes and exceptions document their attributes instead
        doc = obj.__doc__ or ""
        sections = ["Parameters", "Returns", "Examples"]
        absent = [s for s in sections if f"{s}\n" not in doc]
        if absent:
            lacking.append(f"{name} (no {', '.join(absent)})")
    assert not lacking, "docstrings missing numpydoc sections: " + "; ".join(lacking)


def test_public_classes_have_an_example():
    """The API page says every entry has an executed example; result classes and exceptions too."""
    lacking = [name for name in matgrad.__all__
               if isinstance(getattr(matgrad, name), type) and "Examples\n" not in (getattr(matgrad, name).__doc__ or "")]
    assert not lacking, f"classes without an Examples section: {lacking}"


def test_no_machine_paths_in_repository():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    pattern = re.compile(r"/work/|/root/|/home/\w|/tmp/mg|\.pyenv/")
    offenders = []
    for rel in tracked:
        if rel == "tests/test_book.py":
            continue  # the pattern above
        path = ROOT / rel
        if path.suffix in {".png", ".jpg"} or not path.is_file():
            continue
        text = path.read_text(errors="ignore")
        if pattern.search(text):
            offenders.append(rel)
    assert not offenders, f"machine-specific paths in: {offenders}"


@pytest.mark.parametrize("page", ["README.md", "book/intro.md"])
def test_code_examples_in_pages_run(page, capsys):
    """The examples on the front pages are not notebooks, so run them here; each prints True."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / page).read_text(), flags=re.S)
    assert blocks, f"{page} has no Python example"
    for block in blocks:
        exec(compile(block, page, "exec"), {})
        printed = capsys.readouterr().out.split()
        assert "True" in printed and "False" not in printed, f"{page} example printed {printed}"
