"""Heralding protocols, compiled to the core's decision table.

The table is addressed by the click classes of every window x channel cell: cell
``k = w * n_channels + c`` occupies address bits ``2k`` and ``2k + 1`` and holds 0 (no click),
1 (one click) or 2 (two or more). Each entry is an outcome code, 0 meaning "no herald".
"""

from itertools import product

import numpy as np

from ..gateware.layouts import CLASS_MANY, CLASS_NONE, CLASS_ONE, CoreParameters
from .errors import ConfigError

__all__ = ["Protocol", "SingleClick", "BarrettKok", "Custom", "PSI_PLUS", "PSI_MINUS",
           "patterns"]

#: Outcome codes used by the built-in protocols.
PSI_PLUS, PSI_MINUS = 1, 2


def patterns(params: CoreParameters):
    """Yield ``(address, classes)`` for every reachable table address, ``classes`` being an
    ``(n_windows, n_channels)`` array of click classes."""
    nw, nc = params.n_windows, params.n_channels
    for flat in product((CLASS_NONE, CLASS_ONE, CLASS_MANY), repeat=nw * nc):
        address = sum(cls << (2 * k) for k, cls in enumerate(flat))
        yield address, np.array(flat, dtype=np.uint8).reshape(nw, nc)


class Protocol:
    """Maps the click classes of one attempt to an outcome code (0 = no herald)."""

    name = "custom"
    windows_needed = 1

    def outcome(self, classes):
        raise NotImplementedError

    def compile(self, params: CoreParameters):
        """The decision table for a core with ``params``: a list of ``table_depth`` codes."""
        if params.n_windows < self.windows_needed:
            raise ConfigError("protocol", self.name,
                              f"needs {self.windows_needed} detection windows, the device has "
                              f"{params.n_windows}")
        table = [0] * params.table_depth
        for address, classes in patterns(params):
            code = int(self.outcome(classes))
            if not 0 <= code <= params.n_outcomes:
                raise ConfigError("protocol outcome", code,
                                  f"outcome codes are 0..{params.n_outcomes} on this device")
            table[address] = code
        return table


def _single_click(window_classes):
    """Index of the one channel that clicked exactly once while all others stayed dark."""
    ones = np.flatnonzero(window_classes == CLASS_ONE)
    if len(ones) == 1 and np.count_nonzero(window_classes) == 1:
        return int(ones[0])
    return None


class SingleClick(Protocol):
    """Single-photon scheme (Humphreys et al. 2018): exactly one click among all detectors in
    ``window``; detector ``c`` heralds ``outcomes[c]`` (default: detector 0 -> Psi+,
    detector 1 -> Psi-). Two or more clicks are rejected."""

    name = "single-click"

    def __init__(self, window=0, outcomes=(PSI_PLUS, PSI_MINUS)):
        self.window = window
        self.outcomes = tuple(outcomes)
        self.windows_needed = window + 1

    def outcome(self, classes):
        channel = _single_click(classes[self.window])
        if channel is None or channel >= len(self.outcomes):
            return 0
        return self.outcomes[channel]


class BarrettKok(Protocol):
    """Two-photon scheme (Barrett & Kok 2005): exactly one click in each of windows
    ``rounds``; the same detector in both -> Psi+, different detectors -> Psi-."""

    name = "barrett-kok"

    def __init__(self, rounds=(0, 1), same=PSI_PLUS, different=PSI_MINUS):
        self.rounds = tuple(rounds)
        self.same, self.different = same, different
        self.windows_needed = max(self.rounds) + 1

    def outcome(self, classes):
        first = _single_click(classes[self.rounds[0]])
        second = _single_click(classes[self.rounds[1]])
        if first is None or second is None:
            return 0
        return self.same if first == second else self.different


class Custom(Protocol):
    """A user-defined scheme: ``rule(classes) -> outcome`` with ``classes`` an
    ``(n_windows, n_channels)`` array of 0/1/2, or a mapping from the flattened class tuple
    (window-major) to an outcome, absent patterns meaning no herald."""

    name = "custom"

    def __init__(self, rule, windows_needed=1):
        self.rule = rule
        self.windows_needed = windows_needed

    def outcome(self, classes):
        if callable(self.rule):
            return self.rule(classes)
        return self.rule.get(tuple(int(x) for x in classes.flat), 0)
