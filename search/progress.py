"""Progress of a long command: a live line with counts and an ETA on a terminal, plain lines otherwise."""

import time
from typing import TextIO

# Without a terminal, a line at each tenth of the way and at least this often.
PLAIN_EVERY_SECONDS = 10.0
# On a terminal, the line is redrawn at most this often.
TTY_EVERY_SECONDS = 0.1


def _duration(seconds: float) -> str:
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Counts done of a total, with rate and ETA; redrawn in place on a TTY, one line per step otherwise."""

    def __init__(self, out: TextIO, label: str, *, tty: bool | None = None, clock=time.monotonic) -> None:
        self.out = out
        self.label = label
        self.tty = out.isatty() if tty is None else tty
        self.clock = clock
        self.started = clock()
        self._last_draw = float("-inf")
        self._last_tenth = -1
        self._drawn = False

    def describe(self, done: int, total: int) -> str:
        """`label: done/total (pct%), rate/s, ETA m:ss` (the ETA once a rate is known)."""
        elapsed = self.clock() - self.started
        percent = 100.0 * done / total if total else 100.0
        text = f"{self.label}: {done}/{total} ({percent:.0f}%)"
        if done and elapsed > 0:
            rate = done / elapsed
            text += f", {rate:.0f}/s"
            if done < total:
                text += f", ETA {_duration((total - done) / rate)}"
        return text

    def update(self, done: int, total: int) -> None:
        now = self.clock()
        if self.tty:
            if now - self._last_draw >= TTY_EVERY_SECONDS or done >= total:
                self._last_draw = now
                self.out.write("\r\x1b[2K" + self.describe(done, total))
                self.out.flush()
                self._drawn = True
            return
        tenth = int(10 * done / total) if total else 10
        if tenth > self._last_tenth or now - self._last_draw >= PLAIN_EVERY_SECONDS:
            self._last_tenth, self._last_draw = tenth, now
            self.out.write(self.describe(done, total) + "\n")
            self.out.flush()

    def note(self, text: str) -> None:
        """A stage's own line (ends the live line first on a terminal)."""
        self.finish()
        self.out.write(f"{self.label}: {text}\n")
        self.out.flush()

    def finish(self) -> None:
        if self.tty and self._drawn:
            self.out.write("\n")
            self._drawn = False
