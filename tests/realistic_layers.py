"""Realistic layers for the tests and the benchmark of ``check_gradients``.

Each layer has a NumPy forward pass (the scalar loss a user would check), the same
forward pass in PyTorch (whose autograd is the oracle for the true gradients), and a
function that draws its inputs. ``oracle_grads`` runs PyTorch in the inputs' own dtype,
so a float32 claim carries float32 rounding, as a user's float32 backward pass would.
"""

import numpy as np
import torch


def _softmax(z, axis=-1):
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


class Layer:
    def __init__(self, name, draw, numpy_loss, torch_loss):
        self.name, self.draw, self.numpy_loss, self.torch_loss = name, draw, numpy_loss, torch_loss

    def inputs(self, seed, dtype):
        return {k: v.astype(dtype) for k, v in self.draw(np.random.default_rng(seed)).items()}

    def oracle_grads(self, inputs):
        tensors = {k: torch.tensor(v, requires_grad=True) for k, v in inputs.items()}
        self.torch_loss(**tensors).backward()
        return {k: t.grad.numpy().copy() for k, t in tensors.items()}


# 1. linear layer + softmax cross-entropy (mean over the batch)
N_CE, LABELS = 16, np.random.default_rng(99).integers(0, 6, 16)


def _ce_draw(rng):
    return {"X": rng.standard_normal((N_CE, 10)), "W": 0.3 * rng.standard_normal((10, 6)), "b": 0.1 * rng.standard_normal(6)}


def _ce_numpy(X, W, b):
    P = _softmax(X @ W + b)
    return -np.mean(np.log(P[np.arange(N_CE), LABELS]))


def _ce_torch(X, W, b):
    return torch.nn.functional.cross_entropy(X @ W + b, torch.tensor(LABELS))


# 2. LayerNorm over the features, with a fixed incoming gradient G
G_LN = np.random.default_rng(98).standard_normal((8, 12))


def _ln_draw(rng):
    return {"x": 2.0 * rng.standard_normal((8, 12)) + 0.5, "gamma": 1 + 0.1 * rng.standard_normal(12),
            "beta": 0.1 * rng.standard_normal(12)}


def _ln_numpy(x, gamma, beta):
    mu = x.mean(axis=1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=1, keepdims=True)
    y = (x - mu) / np.sqrt(var + 1e-5) * gamma + beta
    return np.sum(G_LN.astype(x.dtype) * y)


def _ln_torch(x, gamma, beta):
    y = torch.nn.functional.layer_norm(x, (12,), gamma, beta, eps=1e-5)
    return torch.sum(torch.tensor(G_LN, dtype=x.dtype) * y)


# 3. attention: softmax(Q K^T / sqrt(d)) V, with a fixed incoming gradient
D_ATT = 8
G_ATT = np.random.default_rng(97).standard_normal((6, D_ATT))


def _att_draw(rng):
    return {k: rng.standard_normal((6, D_ATT)) for k in ("Q", "K", "V")}


def _att_numpy(Q, K, V):
    P = _softmax(Q @ K.T / Q.dtype.type(np.sqrt(D_ATT)))
    return np.sum(G_ATT.astype(Q.dtype) * (P @ V))


def _att_torch(Q, K, V):
    P = torch.softmax(Q @ K.T / D_ATT**0.5, dim=-1)
    return torch.sum(torch.tensor(G_ATT, dtype=Q.dtype) * (P @ V))


# 4. conv1d by im2col: the weight (C_out, C_in, K) used as a (C_out, C_in K) matrix
C_IN, C_OUT, KW, L = 3, 4, 3, 10
G_CONV = np.random.default_rng(96).standard_normal((C_OUT, L - KW + 1))


def _conv_draw(rng):
    return {"x": rng.standard_normal((C_IN, L)), "W": 0.5 * rng.standard_normal((C_OUT, C_IN, KW))}


def _conv_numpy(x, W):
    cols = np.stack([x[:, j:j + KW].reshape(-1) for j in range(L - KW + 1)], axis=1)  # (C_IN KW, L')
    return np.sum(G_CONV.astype(x.dtype) * np.tanh(W.reshape(C_OUT, -1) @ cols))


def _conv_torch(x, W):
    y = torch.nn.functional.conv1d(x[None], W)[0]
    return torch.sum(torch.tensor(G_CONV, dtype=x.dtype) * torch.tanh(y))


# 5. a two-layer tanh MLP with a squared-error loss
Z_MLP = np.random.default_rng(95).standard_normal((12, 3))


def _mlp_draw(rng):
    return {"X": rng.standard_normal((12, 5)), "W1": 0.5 * rng.standard_normal((5, 7)), "b1": 0.1 * rng.standard_normal(7),
            "W2": 0.5 * rng.standard_normal((7, 3))}


def _mlp_numpy(X, W1, b1, W2):
    return 0.5 * np.mean(np.sum((np.tanh(X @ W1 + b1) @ W2 - Z_MLP.astype(X.dtype)) ** 2, axis=1))


def _mlp_torch(X, W1, b1, W2):
    r = torch.tanh(X @ W1 + b1) @ W2 - torch.tensor(Z_MLP, dtype=X.dtype)
    return 0.5 * torch.mean(torch.sum(r**2, dim=1))


LAYERS = [
    Layer("linear + softmax cross-entropy", _ce_draw, _ce_numpy, _ce_torch),
    Layer("LayerNorm", _ln_draw, _ln_numpy, _ln_torch),
    Layer("attention", _att_draw, _att_numpy, _att_torch),
    Layer("conv1d by im2col + tanh", _conv_draw, _conv_numpy, _conv_torch),
    Layer("tanh MLP + squared error", _mlp_draw, _mlp_numpy, _mlp_torch),
]
