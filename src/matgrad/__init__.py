"""matgrad: gradients of matrix products, derived and checked.

The package that the book *matgrad* teaches with. Every public name is listed in
``__all__`` and documented on the API page of the book.
"""

import types as _types

from ._validate import format_bytes
from .gradcheck import (
    GradientCheckResult,
    assert_gradient_close,
    check_gradient,
    numerical_gradient,
    numerical_jacobian,
)
from .jacobian import JacobianTooLarge, jacobian_nbytes, matmul_jacobian, vjp_from_jacobian

# Modules added by later chapters import their public names below, one line each.
# --- chapter modules ---
from .rnn import rnn_backward, rnn_forward, rnn_step_backward, rnn_step_forward
from .einsum import einsum_backward, einsum_grad_subscripts
from .matmul import linear_backward, matmul_backward
from .symbolic import IndexDerivation, MatmulGradientVerification, ReductionStep, TraceGradients, index_latex, index_matmul_gradient, reduce_kronecker_sum, symbol_matrix, trace_matmul_gradients, verify_matmul_gradients  # noqa: E501

__version__ = "0.1.0"

__all__ = sorted(
    name for name, value in globals().items() if not name.startswith("_") and not isinstance(value, _types.ModuleType)
)
