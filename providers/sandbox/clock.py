"""The one clock every sandbox service reads, advanced by tests or by submitted transactions."""

import time

__all__ = ["SandboxClock"]


class SandboxClock:
    """A settable clock in unix seconds.

    It starts at the wall clock (or ``start_s``) and only moves when told to, so tests are
    deterministic. ``follow_wall_clock=True`` keeps it in step with real time (the dev server).
    """

    def __init__(self, start_s: float | None = None, *, follow_wall_clock: bool = False) -> None:
        self._offset_s = 0.0
        self._frozen_s = time.time() if start_s is None else start_s
        self._follow_wall_clock = follow_wall_clock

    @property
    def follows_wall_clock(self) -> bool:
        """True when the clock keeps in step with real time (only ``advance`` moves it ahead)."""
        return self._follow_wall_clock

    def now(self) -> float:
        """Return the current sandbox time in unix seconds."""
        base = time.time() if self._follow_wall_clock else self._frozen_s
        return base + self._offset_s

    def now_s(self) -> int:
        """Return the current sandbox time in whole unix seconds."""
        return int(self.now())

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` (never backwards) and return the new time."""
        if seconds < 0:
            raise ValueError("the sandbox clock never goes backwards")
        self._offset_s += seconds
        return self.now()
