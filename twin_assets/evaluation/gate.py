"""The gate before a promotion: the candidate must beat the author's promoted twin on the primary metric
(held-out negative log-likelihood per token) by a margin, and regress no other metric beyond its tolerance.
An author's first twin has no twin to beat: it is held to the base model that serves the author until then,
and may not be worse than it by more than a tolerance on any metric, the primary one included."""

from dataclasses import dataclass, field

from twin_resources.domain.training import LOWER_IS_BETTER

PRIMARY = "nll"


@dataclass
class GateDecision:
    passed: bool
    reasons: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        return "; ".join(self.reasons)


def decide(candidate: dict[str, float | None], incumbent: dict[str, float | None], margin: float,
           tolerances: dict[str, float], first_twin_tolerance: float | None = None) -> GateDecision:
    """Compare two models' figures (metric -> value; None where a metric could not be measured). With
    `first_twin_tolerance`, the incumbent is the base model and the candidate the author's first twin."""
    reasons, passed = [], True
    new, old = candidate.get(PRIMARY), incumbent.get(PRIMARY)
    if new is None or old is None:
        return GateDecision(False, [f"no {PRIMARY} to compare: the test split has no answer tokens"])
    if first_twin_tolerance is not None:
        if new <= old + first_twin_tolerance:
            reasons.append(f"first twin: {PRIMARY} {new:.3f} against the base model's {old:.3f} "
                           f"(tolerance {first_twin_tolerance})")
        else:
            passed = False
            reasons.append(f"first twin: {PRIMARY} {new:.3f} is worse than the base model's {old:.3f} by more than "
                           f"{first_twin_tolerance}")
    elif new <= old - margin:
        reasons.append(f"{PRIMARY} {new:.3f} beats {old:.3f} by {old - new:.3f} (margin {margin})")
    else:
        passed = False
        reasons.append(f"{PRIMARY} {new:.3f} does not beat {old:.3f} by the margin {margin}")
    for metric, tolerance in tolerances.items():
        new, old = candidate.get(metric), incumbent.get(metric)
        if new is None or old is None:
            continue
        regression = (new - old) if metric in LOWER_IS_BETTER else (old - new)
        if regression > tolerance:
            passed = False
            reasons.append(f"{metric} regressed from {old:.3f} to {new:.3f} (tolerance {tolerance})")
    return GateDecision(passed, reasons)
