"""matgrad: gradients of matrix products, derived and checked.

The package that the book *matgrad* teaches with. Every public name is listed in
``__all__`` and documented on the API page of the book. The modules, in the order
the chapters introduce them:

- ``jacobian``: explicit Jacobians of matrix products and what they cost (chapter 1);
- ``gradcheck``: finite differences and gradient checks (chapter 2);
- ``checks``: a whole backward pass checked in one call, with tolerances measured per
  input (the practical page);
- ``diagnosis``: what kind of mistake a wrong gradient makes (transposed, scaled ...);
- ``matmul``: the backward rules of ``np.matmul`` and of ``nn.Linear`` (chapters 3, 5);
- ``symbolic``: the same rules derived exactly with sympy (chapters 3, 4);
- ``einsum``: gradients of any ``np.einsum`` expression (chapter 4);
- ``rnn``: a vanilla RNN with backpropagation through time (chapter 6);
- ``softmax``: softmax and cross-entropy on logits (chapter 9);
- ``norm``: LayerNorm and BatchNorm (chapter 9);
- ``attention``: scaled dot-product attention, whose backward recomputes the weights (chapter 10).
"""

import types as _types

from ._validate import format_bytes
from .checks import GradientCheckReport, assert_gradients_close, check_gradients, check_vjp
from .diagnosis import diagnose_gradient
from .einsum import einsum_backward, einsum_grad_subscripts
from .gradcheck import (
    GradientCheckResult,
    assert_gradient_close,
    check_gradient,
    numerical_gradient,
    numerical_jacobian,
    random_directions,
)
from .jacobian import JacobianTooLarge, jacobian_nbytes, matmul_jacobian, vjp_from_jacobian
from .matmul import linear_backward, matmul_backward
from .rnn import rnn_backward, rnn_forward, rnn_step_backward, rnn_step_forward
from .norm import batch_norm_backward, batch_norm_forward, layer_norm_backward, layer_norm_forward
from .softmax import cross_entropy, cross_entropy_backward, softmax, softmax_backward

# The names of ``symbolic`` are imported on first use (module ``__getattr__``, PEP 562), so that
# ``import matgrad`` does not import sympy, which only they need; ``import matgrad.symbolic``
# or ``from matgrad import index_matmul_gradient`` imports it.
_SYMBOLIC = (
    "IndexDerivation",
    "MatmulGradientVerification",
    "ReductionStep",
    "TraceGradients",
    "index_latex",
    "index_matmul_gradient",
    "reduce_kronecker_sum",
    "symbol_matrix",
    "trace_matmul_gradients",
    "verify_matmul_gradients",
)
from .attention import attention_backward, attention_forward

__version__ = "0.1.0"

__all__ = sorted(
    [name for name, value in globals().items() if not name.startswith("_") and not isinstance(value, _types.ModuleType)]
    + list(_SYMBOLIC)
)


def __getattr__(name):
    if name in _SYMBOLIC:
        from . import symbolic

        value = getattr(symbolic, name)
        globals()[name] = value  # later look-ups find it directly
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_SYMBOLIC))
