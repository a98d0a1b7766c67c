"""The rotation-augmented gradient (RAG, Algorithm 1 of the paper)."""
from __future__ import annotations

from typing import Any


def rotation_generator(xp: Any, S: Any) -> Any:
    """A = (T - T^T) / 2 with T the strictly upper-triangular part of S = W1 C W1^T: (r, k, k).

    A is skew-symmetric; it rotates the latent units towards the ordered, axis-aligned solution
    without changing the reconstruction loss to first order.
    """
    T = xp.triu(S, k=1)
    return (T - xp.matrix_transpose(T)) / 2


def rotation_augment(xp: Any, S: Any, W1: Any, W2: Any, g1: Any, g2: Any) -> tuple[Any, Any]:
    """Augmented gradients (g1 - A W1, g2 + W2 A), what the optimizer sees in RAG.

    W1: (r, k, m), W2: (r, m, k), S: (r, k, k). With plain GD this is
    W1 <- (I + lr A) W1 - lr dL/dW1 and W2 <- W2 (I - lr A) - lr dL/dW2.
    """
    A = rotation_generator(xp, S)
    return g1 - A @ W1, g2 + W2 @ A
