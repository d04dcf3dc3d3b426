"""matgrad: gradients of matrix products, derived and checked.

The package that the book *matgrad* teaches with. Every public name is listed in
``__all__`` and documented on the API page of the book. The modules, in the order
the chapters introduce them:

- ``jacobian``: explicit Jacobians of matrix products and what they cost (chapter 1);
- ``gradcheck``: finite differences and gradient checks (chapter 2);
- ``matmul``: the backward rules of ``np.matmul`` and of ``nn.Linear`` (chapters 3, 5);
- ``symbolic``: the same rules derived exactly with sympy (chapters 3, 4);
- ``einsum``: gradients of any ``np.einsum`` expression (chapter 4);
- ``rnn``: a vanilla RNN with backpropagation through time (chapter 6).
"""

import types as _types

from ._validate import format_bytes
from .einsum import einsum_backward, einsum_grad_subscripts
from .gradcheck import (
    GradientCheckResult,
    assert_gradient_close,
    check_gradient,
    numerical_gradient,
    numerical_jacobian,
)
from .jacobian import JacobianTooLarge, jacobian_nbytes, matmul_jacobian, vjp_from_jacobian
from .matmul import linear_backward, matmul_backward
from .rnn import rnn_backward, rnn_forward, rnn_step_backward, rnn_step_forward
from .symbolic import (
    IndexDerivation,
    MatmulGradientVerification,
    ReductionStep,
    TraceGradients,
    index_latex,
    index_matmul_gradient,
    reduce_kronecker_sum,
    symbol_matrix,
    trace_matmul_gradients,
    verify_matmul_gradients,
)
from .attention import attention_backward, attention_forward

__version__ = "0.1.0"

__all__ = sorted(
    name for name, value in globals().items() if not name.startswith("_") and not isinstance(value, _types.ModuleType)
)
