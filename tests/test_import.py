"""Tests that ``import matgrad`` stays light: sympy is imported only when a symbolic name is used.

Each check runs in a fresh interpreter (``sys.modules`` of the test process has sympy already)."""

import subprocess
import sys

import matgrad

# the lazily imported names, as matgrad lists them; a test below checks them against symbolic.__all__
SYMBOLIC = list(matgrad._SYMBOLIC)


def _run(code: str, *options: str) -> str:
    done = subprocess.run([sys.executable, *options, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_import_matgrad_does_not_import_sympy():
    """Issue 12: a user of the checkers and rules never pays for sympy."""
    code = (
        "import sys, numpy as np, matgrad\n"
        "from matgrad import check_gradient, matmul_backward, einsum_backward, rnn_forward, format_bytes\n"
        "X, W = np.ones((2, 3)), np.ones((3, 2))\n"
        "dX, dW = matmul_backward(X, W, np.ones((2, 2)))\n"
        "assert check_gradient(lambda X: np.sum(X @ W), X, dX)\n"
        "print(sorted(m for m in sys.modules if m == 'sympy' or m.startswith('sympy.')))"
    )
    assert _run(code) == "[]"


def test_symbolic_names_import_sympy_when_first_used():
    code = (
        "import sys, matgrad\n"
        "before = 'sympy' in sys.modules\n"
        "from matgrad import index_matmul_gradient\n"
        "print(before, 'sympy' in sys.modules, index_matmul_gradient('X').matrix_form)"
    )
    assert _run(code) == "False True G*W.T"


def test_symbolic_names_are_public_and_are_the_functions_of_matgrad_symbolic():
    import matgrad.symbolic

    assert set(SYMBOLIC) == set(matgrad.symbolic.__all__)
    for name in SYMBOLIC:
        assert name in matgrad.__all__
        assert name in dir(matgrad)
        assert getattr(matgrad, name) is getattr(matgrad.symbolic, name)


def test_star_import_and_unknown_names():
    assert _run("from matgrad import *; print(verify_matmul_gradients(1, 1, 1).dX_matches)") == "True"
    assert "has no attribute 'no_such_name'" in _run(
        "import matgrad\ntry:\n    matgrad.no_such_name\nexcept AttributeError as e:\n    print(e)"
    )


def test_sympy_imports_without_deprecation_warnings():
    """Issue 12: sympy 1.12 with mpmath 1.4 warned on import; the floor sympy>=1.12.1 keeps mpmath < 1.4."""
    assert _run("import matgrad.symbolic; print('ok')", "-W", "error::DeprecationWarning") == "ok"
