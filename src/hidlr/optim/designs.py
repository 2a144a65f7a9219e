"""Probe designs: where Hi-DLR evaluates the loss along the base optimizer's update.

A design is a matrix ``Z`` of shape (J, K): probe ``j`` evaluates the loss at
``w - sum_k Z[j, k] * delta_k``, where ``delta_k = h_k * d_k`` is group ``k``'s update at its current
rate ``h_k``. Entries are multiples of the current rate, so designs do not depend on the scale of the
rates. Rows only ever involve active groups (frozen groups get all-zero columns and no probes).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def line_design(active: Sequence[bool], points: Sequence[float]) -> torch.Tensor:
    """One line per active group: perturb that group alone at each multiple in ``points``.

    Returns Z of shape (len(points) * n_active, K), float64.
    """
    k = len(active)
    rows = []
    for g in range(k):
        if not active[g]:
            continue
        for m in points:
            row = torch.zeros(k, dtype=torch.float64)
            row[g] = m
            rows.append(row)
    return torch.stack(rows) if rows else torch.zeros(0, k, dtype=torch.float64)


def pair_design(active: Sequence[bool], multiple: float = 1.0) -> torch.Tensor:
    """One probe per pair of active groups, both perturbed by ``multiple``: identifies the cross terms.

    Returns Z of shape (n_active * (n_active - 1) / 2, K), float64.
    """
    k = len(active)
    idx = [g for g in range(k) if active[g]]
    rows = []
    for i, g in enumerate(idx):
        for h in idx[i + 1 :]:
            row = torch.zeros(k, dtype=torch.float64)
            row[g] = multiple
            row[h] = multiple
            rows.append(row)
    return torch.stack(rows) if rows else torch.zeros(0, k, dtype=torch.float64)


def random_design(
    active: Sequence[bool], n_probes: int, points: Sequence[float], generator: torch.Generator
) -> torch.Tensor:
    """``n_probes`` probes that perturb every active group at once, each by a multiple drawn from ``points``.

    Cross terms then act as noise in a diagonal fit. Returns Z of shape (n_probes, K), float64.
    """
    k = len(active)
    choices = torch.tensor(list(points), dtype=torch.float64)
    pick = torch.randint(len(choices), (n_probes, k), generator=generator)
    z = choices[pick]
    mask = torch.tensor([bool(a) for a in active], dtype=torch.float64)
    return z * mask
