"""Prototypes of rounds 27-32 of the rate diagnosis (``docs/diagnosis.md``), patched into the engine
by ``round4.py``'s flags: how a refresh probes a rejected fit (``--reprobe``), the groups' ratios
locked once they form (``--lock-ratios``), the cross terms inside the growth window
(``--full-early``) and the one-group multiple when the groups agree (``--pool-agree``). None is in
the engine.
"""

from __future__ import annotations

import dataclasses
import math
import statistics

# the rejections re-probed at a smaller span, by --reprobe-reasons choice
REPROBE_REASONS: dict[str, tuple[str, ...]] = {
    "shape": ("not convex along the update", "poor quadratic fit"),
    "measured": ("not convex along the update", "poor quadratic fit", "not a descent direction"),
}
REPROBED: list[tuple[int, int, int]] = []  # (step, groups re-probed, of them accepted), for the run's log


def patch_reprobe(span: float, reasons: tuple[str, ...]) -> None:
    """PROTOTYPE, not in the engine (round 27 of ``docs/diagnosis.md``): a probed group whose own fit
    is rejected for one of ``reasons`` is probed again, alone, at ``span`` times the probe multiples
    (4 more forwards per group), and takes that fit's decision when it is accepted; then the
    momentum correction, the clip and the smoothing as usual. A quadratic fit over probes at up to
    twice a step that is too large spans more than the region where the loss is quadratic: the loss
    along the update is then not convex at that span, or not a parabola. The engine keeps such a
    group's rate, so a rate far too large (a start from above, a rate that grew late) stays there. A
    smaller span measures the curvature where the fit's model holds (a trust region)."""
    from hidlr.optim import rules
    from hidlr.optim.designs import line_design
    from hidlr.optim.quadfit import fit_finite_probes
    from hidlr.optim.refresh import Refresher

    decide, settle = Refresher._decide, Refresher._settle

    def decide_stashed(self, probe, move, loss0, applied, active, probed):
        self._reprobe_at = (probe, move, loss0) if all(p or not a for p, a in zip(probed, active)) else None
        try:
            return decide(self, probe, move, loss0, applied, active, probed)
        finally:
            self._reprobe_at = None

    def settle_reprobed(self, decisions, loss0, forwards, scale):
        stash = getattr(self, "_reprobe_at", None)
        mask = [not d.accepted and d.rate > 0 and (d.reason or "").startswith(reasons) for d in decisions]
        if stash is None or not any(mask):
            return settle(self, decisions, loss0, forwards, scale)
        probe, move, base = stash
        points = [span * p for p in self.probes]
        z = line_design(mask, points)
        y = self._probe_along(probe, move, z, base)
        fit, fit_active = fit_finite_probes(z, y, True, mask, full=False)
        again = rules.newton_decisions(
            fit,
            mask,
            fit_active,
            [d.rate for d in decisions],
            [d.estimate for d in decisions],
            [d.name for d in decisions],
            dataclasses.replace(self.rules, mode="diag"),
            span=max(abs(p) for p in points),
            resolution=self._resolution(base),
            probed=mask,
        )
        out = [n if m and n.accepted else d for d, n, m in zip(decisions, again, mask)]
        REPROBED.append((self._t, sum(mask), sum(n.accepted for n, m in zip(again, mask) if m)))
        return settle(self, out, loss0, forwards + len(z), scale)

    Refresher._decide = decide_stashed
    Refresher._settle = settle_reprobed


def patch_lock_ratios(after: float = 0.0) -> None:
    """PROTOTYPE, not in the engine (round 29 of ``docs/diagnosis.md``): once the rates have arrived
    (a refresh had every target inside the clip) and ``after`` of the step budget has passed (0: at
    arrival; 0.25: at the end of the growth window), every later refresh probes the one-group line
    alone, as with more groups than ``max_groups``: the groups keep the ratios between their rates
    that the per-group fits reached, and the one-group rule (GeN) moves their common level. Per-group
    fits late in a run are rejected half the time (rounds 13 and 27) and the accepted ones follow
    the rates towards the edge of stability (finding 2), while the one-group line costs 4-8 forwards
    instead of 4K + 7, so its refreshes come more often under the same probe budget."""
    from hidlr.optim.refresh import Refresher

    settle = Refresher._settle

    def settle_then_lock(self, decisions, loss0, forwards, scale):
        record = settle(self, decisions, loss0, forwards, scale)
        late = self.rules.total_steps is not None and self._t >= after * self.rules.total_steps
        if self._arrived and late and self.rules.max_groups != 0:
            self.rules = dataclasses.replace(self.rules, max_groups=0)
        return record

    Refresher._settle = settle_then_lock


def patch_full_early(window: float) -> None:
    """PROTOTYPE, not in the engine (round 30 of ``docs/diagnosis.md``): refreshes in the first
    ``window`` of the step budget fit the cross terms between groups (``mode="full"``: one more probe
    per pair of groups, the minimiser over non-negative rates), later ones the diagonal rule. Round
    29 found that the per-group refreshes inside the growth window set the ratios that decide
    against the one-group rule, and round 22 that the cross terms lower the rates of groups that
    move together (digits-finetune, digits-resnet-bn) at a cost on bnn."""
    from hidlr.optim.refresh import Refresher

    refresh = Refresher._refresh

    def refresh_by_phase(self, *args, **kwargs):
        early = self.rules.total_steps is not None and self._t < window * self.rules.total_steps
        self.rules = dataclasses.replace(self.rules, mode="full" if early else "diag")
        return refresh(self, *args, **kwargs)

    Refresher._refresh = refresh_by_phase


def patch_pool_when_agreeing(threshold: float) -> None:
    """PROTOTYPE, not in the engine (round 32 of ``docs/diagnosis.md``): at a per-group refresh,
    when the accepted groups' log Newton multiples spread (standard deviation) by less than
    ``threshold``, every accepted group takes the one-group line's multiple (``shrink`` 0), else the
    engine's ``shrink``. Round 31: where the groups ask for nearly the same multiple
    (digits-mlp-head-sgd, digits-finetune), per-group rates lose to the one-group rule."""
    from hidlr.optim import rules

    original = rules.shrink_to_one_group

    def shrink_to_one_group(decisions, active, m0, shrink):
        logm = [
            math.log(d.newton_rate / d.rate)
            for d, act in zip(decisions, active)
            if act and d.accepted and d.rate > 0 and d.newton_rate
        ]
        agree = len(logm) > 1 and statistics.pstdev(logm) < threshold
        return original(decisions, active, m0, 0.0 if agree else shrink)

    rules.shrink_to_one_group = shrink_to_one_group
