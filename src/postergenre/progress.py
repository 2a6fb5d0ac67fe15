"""Progress of long work: counts, rate and time left, on a terminal or in a log.

One mechanism for every long step (resize, embed, each epoch's batches, predict, ...): a tqdm
bar when stderr is a terminal (and not under CI), otherwise a log line every `every` seconds
("embed: 1,200/9,672 posters (12%), 58.1/s, 2m25s left") and one when the work ends, so a
`dvc repro` log shows what a long stage is doing and how long it has to go.
"""

from __future__ import annotations

import logging
import os
import sys
import time

log = logging.getLogger("postergenre.progress")
_now = time.perf_counter  # the clock (a test sets its own)


def on_terminal() -> bool:
    """Bars on a terminal, log lines under CI and in logs."""
    return sys.stderr.isatty() and not os.environ.get("CI")


def duration(seconds: float) -> str:
    """65 -> '1m05s'; 3700 -> '1h01m'; 7 -> '7s'."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class Progress:
    """`with Progress("embed", n, "poster") as p: ... p.update(k)`.

    `enabled=False` (a rank other than 0, a caller that wants silence) makes every call a no-op.
    The closing line is logged only when the work took longer than `every` seconds, so quick
    steps stay quiet.
    """

    def __init__(
        self,
        what: str,
        total: int,
        unit: str = "poster",
        every: float = 10.0,
        enabled: bool = True,
        logger: logging.Logger | None = None,
    ):
        self.what, self.total, self.unit, self.every = what, int(total), unit, every
        self.enabled = enabled
        self.log = logger or log
        self.done = 0
        self.started = _now()
        self._last = 0.0
        self._bar = None
        if enabled and on_terminal():
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, desc=what, unit=unit, leave=False)

    def line(self, elapsed: float | None = None) -> str:
        """'what: done/total units (pct%), rate/s, time left' after `elapsed` seconds (now)."""
        if elapsed is None:
            elapsed = _now() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        pct = 100.0 * self.done / self.total if self.total else 100.0
        units = self.unit + ("es" if self.unit.endswith(("s", "ch", "sh", "x")) else "s")
        text = f"{self.what}: {self.done:,}/{self.total:,} {units} ({pct:.0f}%), {rate:,.1f}/s"
        if self.done < self.total and rate > 0:
            text += f", {duration((self.total - self.done) / rate)} left"
        else:
            text += f", {duration(elapsed)} in all"
        return text

    def update(self, n: int = 1) -> None:
        if not self.enabled:
            return
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            return
        elapsed = _now() - self.started
        if elapsed - self._last >= self.every and self.done < self.total:
            self._last = elapsed
            self.log.info("%s", self.line(elapsed))

    def close(self) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elapsed = _now() - self.started
        if elapsed >= self.every:
            self.log.info("%s", self.line(elapsed))
        self.enabled = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
