"""The rules page checks its rows: a wrong row must stop the page's execution.

``book/rules.ipynb`` defines every rule once, as data (LaTeX for the table and NumPy for the
check), and raises ``AssertionError`` in its checking loop when a rule disagrees with PyTorch
autograd. These tests edit a copy of the notebook to make one row wrong and execute the copy.
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
    assert rows >= 16 and printed.count("tolerance/error > 1e+03") == rows, printed
