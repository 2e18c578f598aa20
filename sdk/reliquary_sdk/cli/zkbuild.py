"""Progress of ``npm --prefix zk run build`` (zk/scripts/build.mjs), read from the lines it prints.

build.mjs prints ``[  12.3s] <step> [<circuit>]`` when a step starts and ``[  15.0s]   done in 2.7s``
when it ends; everything else (tool output, snarkjs progress) is indented detail. Each circuit goes
through compile, five key steps and two example steps; the powers-of-tau ceremony has four steps (one
when ``--reuse-ptau`` keeps the committed one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

CIRCUITS: Final = ("device_proof", "location_chain", "timestamp_verifier", "pattern_match", "context_proof")
CIRCUIT_STEPS: Final = (
    "compile",
    "groth16 setup",
    "zkey contribute",
    "zkey beacon",
    "zkey verify",
    "zkey export verificationkey",
    "example proof",
    "groth16 verify",
)
CEREMONY_STEPS: Final = (
    "powersoftau new",
    "powersoftau contribute",
    "powersoftau prepare phase2",
    "powersoftau verify",
    "example inputs",
)
_STEPS = "|".join(re.escape(s) for s in sorted({*CIRCUIT_STEPS, *CEREMONY_STEPS}, key=len, reverse=True))
_START = re.compile(rf"^\[\s*\d+(?:\.\d+)?s\] (?P<step>{_STEPS})(?: \[(?P<circuit>[a-z_]+)\])?$")
_DONE = re.compile(r"^\[\s*\d+(?:\.\d+)?s\]   done in (?P<seconds>\d+(?:\.\d+)?)s$")
_SECTION = re.compile(r"^\[\s*\d+(?:\.\d+)?s\] == (?P<title>.+) ==$")


@dataclass
class BuildProgress:
    """What the build has done so far: steps finished per circuit and for the ceremony."""

    done: dict[str, int] = field(default_factory=lambda: dict.fromkeys((*CIRCUITS, "ceremony"), 0))
    current: tuple[str, str] | None = None  # (step, circuit or "ceremony")
    section: str = ""
    finished: int = 0

    def feed(self, line: str) -> tuple[str, str] | None:
        """Read one output line; the (step, circuit) it finished, if it finished one."""
        line = line.rstrip("\r\n")
        if (match := _START.match(line)) is not None:
            self.current = (match["step"], match["circuit"] or "ceremony")
            return None
        if (match := _SECTION.match(line)) is not None:
            self.section = match["title"]
            return None
        if _DONE.match(line) and self.current is not None:
            finished, self.current = self.current, None
            self.done[finished[1]] = self.done.get(finished[1], 0) + 1
            self.finished += 1
            return finished
        return None


def total_steps(*, reuse_ptau: bool = False, examples_only: bool = False) -> dict[str, int]:
    """The steps each part of a build takes (the progress bars' totals)."""
    if examples_only:
        return {**dict.fromkeys(CIRCUITS, 2), "ceremony": 1}
    return {**dict.fromkeys(CIRCUITS, len(CIRCUIT_STEPS)), "ceremony": 2 if reuse_ptau else 5}
