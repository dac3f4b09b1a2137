"""The gate before a promotion: the candidate must beat what serves the author now on the primary metric
(held-out negative log-likelihood per token) by a margin, and regress no other metric beyond its tolerance."""

from dataclasses import dataclass, field

PRIMARY = "nll"
LOWER_IS_BETTER = {"nll"}


@dataclass
class GateDecision:
    passed: bool
    reasons: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        return "; ".join(self.reasons)


def decide(candidate: dict[str, float | None], incumbent: dict[str, float | None], margin: float,
           tolerances: dict[str, float]) -> GateDecision:
    """Compare two models' figures (metric -> value; None where a metric could not be measured)."""
    reasons, passed = [], True
    new, old = candidate.get(PRIMARY), incumbent.get(PRIMARY)
    if new is None or old is None:
        return GateDecision(False, [f"no {PRIMARY} to compare: the test split has no answer tokens"])
    if new <= old - margin:
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
