"""Asset checks as declared once: name, what holds when it passes, and how bad a failure is."""

from dataclasses import dataclass, field

import dagster as dg


@dataclass(frozen=True)
class Check:
    name: str
    description: str  # what holds when the check passes
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR


@dataclass
class CheckOutcome:
    name: str
    passed: bool
    description: str  # what this evaluation found
    offenders: list[str] = field(default_factory=list)


def check_specs(checks: tuple[Check, ...], asset: str | dg.AssetKey) -> list[dg.AssetCheckSpec]:
    return [dg.AssetCheckSpec(c.name, asset=asset, description=c.description) for c in checks]


def check_results(checks: tuple[Check, ...], outcomes: list[CheckOutcome],
                  asset: dg.AssetKey | None = None) -> list[dg.AssetCheckResult]:
    """Each outcome as a result with its declared severity, the offenders listed and counted."""
    declared = {c.name: c for c in checks}
    return [dg.AssetCheckResult(asset_key=asset, check_name=o.name, passed=o.passed, description=o.description,
                                severity=declared[o.name].severity,
                                metadata={"offenders": dg.MetadataValue.json(o.offenders[:50]),
                                          "offender_count": dg.MetadataValue.int(len(o.offenders))})
            for o in outcomes]
