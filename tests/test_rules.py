"""The rules page checks its rows: a wrong row must stop the page's execution.

``book/rules.ipynb`` defines every rule once, as data (LaTeX for the table and NumPy for the
check), and raises ``AssertionError`` in its checking loop when a rule disagrees with PyTorch
autograd, or when the row's LaTeX gives no formula for the gradient of one of its inputs.
These tests edit a copy of the notebook to make one row wrong and execute the copy, and check
the pairing of each row's LaTeX with its code.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "book" / "rules.ipynb"

# (the row's correct code, the wrong code put in its place, what the failure must say)
MUTATIONS = {
    # Y = XW with dW = G X^T: with every size different the shapes disagree.
    "transpose": ('{"X": G @ W.T, "W": X.T @ G}', '{"X": G @ W.T, "W": G @ X.T}', "matrix product (rows are examples)"),
    # Cross-entropy without the 1/N of the mean: the shapes agree, the values do not.
    "factor": ("np.eye(Z.shape[1])[y]) / len(Z)", "np.eye(Z.shape[1])[y])", "cross-entropy on logits"),
    # The embedding gradient that keeps one occurrence of each token (NumPy's dE[x] = G) instead of the sum;
    # the page draws more tokens than the table has rows, so some token repeats.
    "scatter": (
        '{"E": np.eye(E.shape[0])[tokens].T @ G}',
        '{"E": np.eye(E.shape[0])[np.unique(tokens)].T @ G[np.unique(tokens, return_index=True)[1]]}',
        "embedding lookup",
    ),
    # The code is right but the table's formula leaves out dW.
    "formula": (
        r'backward=r"$dX = G W^\top$, $dW = X^\top G$"',
        r'backward=r"$dX = G W^\top$"',
        "matrix product (rows are examples): the LaTeX backward gives no formula for d['W']",
    ),
}


def _execute(nb, tmp_path):
    env_path = os.environ.get("PYTHONPATH", "")
    src = str(ROOT / "src")
    os.environ["PYTHONPATH"] = src + (os.pathsep + env_path if env_path else "")
    try:
        NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        if env_path:
            os.environ["PYTHONPATH"] = env_path
        else:
            os.environ.pop("PYTHONPATH", None)


def _rows_cell(nb):
    cells = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith("ROWS = [")]
    assert len(cells) == 1, "the rules page should define its rows in one cell starting with ROWS = ["
    return cells[0]


@pytest.mark.parametrize("kind", sorted(MUTATIONS))
def test_a_wrong_row_fails_the_execution(kind, tmp_path):
    right, wrong, row = MUTATIONS[kind]
    nb = nbformat.read(PAGE, as_version=4)
    cell = _rows_cell(nb)
    assert right in cell.source, f"the row to break is not in the rules cell: {right}"
    cell.source = cell.source.replace(right, wrong, 1)
    copy = tmp_path / "rules.ipynb"
    nbformat.write(nb, copy)
    with pytest.raises(CellExecutionError) as info:
        _execute(nbformat.read(copy, as_version=4), tmp_path)
    message = str(info.value)
    assert "AssertionError" in message and row in message, message[-2000:]


def test_the_unmodified_page_executes(tmp_path):
    """The control: the same execution of the committed page raises nothing, and every row passes."""
    nb = nbformat.read(PAGE, as_version=4)
    _execute(nb, tmp_path)
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    rows = int(printed.split(" rows")[0].split()[-1])  # the page prints "N rows" after defining them
    assert rows >= 16 and printed.count("tolerance/error > 1e+02") == rows, printed
    assert f"all {rows} rows: error < 1e-12" in printed, printed


def _page_namespace():
    """Run the page's code cells in this process (no kernel); the names they define."""
    nb = nbformat.read(PAGE, as_version=4)
    namespace: dict = {}
    for cell in nb.cells:
        if cell.cell_type == "code":
            exec(compile(cell.source, str(PAGE), "exec"), namespace)  # noqa: S102  (the book's own page)
    return namespace


@pytest.fixture(scope="module")
def page():
    pytest.importorskip("torch")
    return _page_namespace()


def test_every_row_pairs_its_latex_with_its_code(page):
    """Each row has both forms, the code takes the inputs the row names, and the LaTeX names every gradient."""
    import inspect

    rows = page["ROWS"]
    assert len(rows) >= 16
    keys = {"rule", "convention", "forward", "backward", "where", "inputs", "out", "torch", "backward_np"}
    for i, row in enumerate(rows, start=1):
        label = f"row {i} ({row.get('rule')}, {row.get('convention')})"
        assert set(row) == keys, f"{label}: keys {sorted(row)}"
        assert row["forward"].strip() and row["backward"].strip() and "$" in row["backward"], label
        assert list(inspect.signature(row["torch"]).parameters) == list(row["inputs"]), f"{label}: torch arguments"
        params = inspect.signature(row["backward_np"]).parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            assert list(params)[0] == "G", label
        else:
            assert list(params) == ["G", *row["inputs"]], f"{label}: backward_np arguments {list(params)}"
        assert page["unnamed_gradients"](row) == [], f"{label}: the LaTeX backward leaves out a gradient"
        assert row["where"].count("{ref}`Ch. ") == 1, f"{label}: links no chapter"


def test_each_row_links_the_chapter_that_derives_it(page):
    """The chapter a row links is the chapter whose equations and theorems it cites."""
    import re

    chapters = {}
    for path in sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb")):
        label = re.search(r"^\((ch-[a-z-]+)\)=", nbformat.read(path, as_version=4).cells[0].source, re.M)
        chapters[label.group(1)] = int(path.name[:2])
    for i, row in enumerate(page["ROWS"], start=1):
        (number, target), = re.findall(r"\{ref\}`Ch\. (\d+) <(ch-[a-z-]+)>`", row["where"])
        assert chapters[target] == int(number), f"row {i}: Ch. {number} links {target}"
        cited = re.findall(r"\{(?:eq|prf:ref)\}`(?:eq|thm)-ch(\d+)-", row["where"])
        assert cited and cited[0] == number, f"row {i} ({row['rule']}): cites chapters {cited}, links Ch. {number}"
    attention = [row for row in page["ROWS"] if row["rule"] == "attention"]
    assert len(attention) == 1 and "<ch-attention>" in attention[0]["where"]


def test_the_pairing_check_catches_a_missing_gradient(page):
    """Test the test: the same row with dW removed from its LaTeX is caught, and names W."""
    row = dict(page["ROWS"][0], backward=r"$dX = G W^\top$")
    assert page["unnamed_gradients"](row) == ["W"]
    row = dict(page["ROWS"][0], backward=r"$dX = G W^\top$, $dW_c = X^\top G$")  # dW_c is not dW
    assert page["unnamed_gradients"](row) == ["W"]


def test_the_table_is_generated_from_the_rows(page):
    """The displayed table has one line per row, holding that row's LaTeX verbatim."""
    lines = [line for line in str(page["table"]).splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(lines) == len(page["ROWS"])
    for line, row in zip(lines, page["ROWS"]):
        for field in ("forward", "backward", "where"):
            assert f"| {row[field]} |" in line, (field, line)
