"""How wide an estimate honestly is: low / high multipliers on the expected time, each with its reason.

The expected value is the calibrated one; the band multiplies in what we know about its error:
- the calibration residuals of the same regime (published points of that GPU generation);
- no published point of the GPU generation at all;
- sharded training across nodes: replications of s1 on the same 16 H100 took 26 min (paper), ~3 h
  (simplescaling/s1 #125, FSDP and ZeRO-3 both, "250 W out of 700 W") and >18 h (#111);
- weights and optimizer offloaded to the CPU: the spread of the published ZeRO-3-offload runs around the model;
- a token count that is assumed (half to twice) or only an upper bound;
- GRPO rollouts, whose generated token counts no published run gives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cache

from qwen_recipes.cost.timing import CALIBRATED_GENERATIONS

S1_PAPER_MINUTES = 26  # arXiv 2501.19393
S1_REPLICATIONS = {"#125": 180, "#111": 18 * 60}  # minutes on the same 16 H100 (simplescaling/s1 issues)
UNCALIBRATED = (0.67, 1.5)  # a GPU generation without any published point: +-50%
GRPO = (1 / 3, 3.0)  # GRPO: rollout lengths and the 5%-of-peak generation rate are assumptions
ASSUMED_TOKENS = (0.5, 2.0)  # an assumed tokens-per-row count: half to twice
BOUND_LOW = 0.25  # only an upper bound on tokens (every sequence at the cap): the low end assumes a quarter of it


@dataclass
class Band:
    """Multipliers on the expected time (low <= 1 <= high) and why.

    Sources are independent, so their log-widths add in quadrature (a worst case of every source at once is far
    less likely than any one of them).
    """

    reasons: list[str] = field(default_factory=list)
    _down: list[float] = field(default_factory=list)
    _up: list[float] = field(default_factory=list)

    def widen(self, low: float, high: float, reason: str) -> None:
        """Add another independent source of error: the time may be `low` to `high` times the expected."""
        self._down.append(math.log(min(low, 1.0)))
        self._up.append(math.log(max(high, 1.0)))
        self.reasons.append(reason)

    @property
    def low(self) -> float:
        """Multiplier of the band's low end."""
        return math.exp(-math.sqrt(sum(x * x for x in self._down)))

    @property
    def high(self) -> float:
        """Multiplier of the band's high end."""
        return math.exp(math.sqrt(sum(x * x for x in self._up)))


@cache
def residual_range(generation: str | None = None, offload: bool = False) -> tuple[float, float, int]:
    """(lowest, highest) published/predicted time over the throughput points of a GPU generation, or over the
    published ZeRO-3-offload runs (`offload=True`), and how many points."""
    from qwen_recipes.cost.calibration import residuals

    if offload:
        ratios = [1 / r["ratio"] for r in residuals() if r["offload"]]
    else:
        ratios = [1 / r["ratio"] for r in residuals() if r["kind"] == "throughput" and r["generation"] == generation]
    return (min(ratios), max(ratios), len(ratios)) if ratios else (1.0, 1.0, 0)


def time_band(
    generation: str,
    gpus: int,
    multi_node: bool,
    sharded: bool,
    offload: bool,
    tokens_kind: str,
    task: str,
) -> Band:
    """The band of one estimate; `tokens_kind` is exact | assumed | upper bound."""
    b = Band()
    if generation in CALIBRATED_GENERATIONS:
        lo, hi, n = residual_range(generation)
        b.widen(min(lo, 1.0), max(hi, 1.0), f"published/predicted time over the {n} {generation} throughput points: "
                f"{lo:.2f}-{hi:.2f}")  # fmt: skip
    else:
        b.widen(*UNCALIBRATED, f"no published point on a {generation} GPU: +-50%")
    if multi_node and sharded:
        slow = max(S1_REPLICATIONS.values()) / S1_PAPER_MINUTES
        mid = S1_REPLICATIONS["#125"] / S1_PAPER_MINUTES
        b.widen(1.0, mid, f"sharded across nodes: s1 on the same 16 H100 took {S1_PAPER_MINUTES} min (paper), ~3 h "
                f"(simplescaling/s1 #125) and >18 h (#111, {slow:.0f}x; outside the band): the network decides")  # fmt: skip
    if offload:
        lo, hi, n = residual_range(offload=True)
        b.widen(min(lo, 1.0), max(hi, 1.0), f"CPU offload: published/predicted time over the {n} published ZeRO-3-offload "
                f"runs (token counts assumed): {lo:.2f}-{hi:.2f}")  # fmt: skip
    if tokens_kind == "assumed":
        b.widen(*ASSUMED_TOKENS, "token count not published: assumed tokens per row, half to twice")
    elif tokens_kind == "upper bound":
        b.widen(BOUND_LOW, 1.0, "token count unknown: expected is an upper bound (every sequence at its cap)")
    if task == "grpo":
        b.widen(*GRPO, "GRPO: no published run gives its generated tokens; rollout cost is an assumption (1/3-3x)")
    return b
