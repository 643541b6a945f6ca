"""The job page's timeline: its events as rows, a run of progress folded into one, lost attempts given theirs."""

from dataclasses import dataclass
from typing import Any

from offload.admin.formatting import duration
from offload.models import JobEvent

# The timeline reads at most this many events: progress runs fold into one row each.
TIMELINE_EVENTS = 2000


@dataclass
class TimelineRow:
    at: Any
    event: str
    status: str
    progress: str
    note: str
    seqs: str


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} %"


def timeline(events, taken_over=()) -> list[TimelineRow]:
    """The job's events as the page lists them: a run of progress events folds into one row.

    The row says the first and last progress and the rate between them, so a retry, a cancel
    or a lost attempt is not buried under one row per second of a long transcode. taken_over:
    lost attempts that a redelivered task took over (no event of their own says so), each
    given its row.
    """
    rows: list[TimelineRow] = []
    run: list[JobEvent] = []

    def fold() -> None:
        if not run:
            return
        first, last = run[0], run[-1]
        if len(run) == 1:
            rows.append(
                TimelineRow(
                    first.created_at, "progress", "running", _percent(first.payload.get("progress")), "", str(first.seq)
                )
            )
        else:
            start, end = first.payload.get("progress"), last.payload.get("progress")
            seconds = (last.created_at - first.created_at).total_seconds()
            rate = ""
            if start is not None and end is not None and seconds > 0:
                rate = f"{(end - start) / seconds:.2g} %/s over {duration(seconds)}"
            rows.append(
                TimelineRow(
                    first.created_at,
                    f"progress ×{len(run)}",
                    "running",
                    f"{_percent(start)} → {_percent(end)}",
                    rate,
                    f"{first.seq}–{last.seq}",
                )
            )
        run.clear()

    for event in events:
        if event.event == "progress":
            run.append(event)
            continue
        fold()
        payload = event.payload
        # A failure's, a cancel's or a lost attempt's reason; a start carries the last one's still.
        note = (payload.get("error") or "") if event.event in ("queued", "failed", "cancelled") else ""
        rows.append(
            TimelineRow(
                event.created_at,
                event.event,
                payload.get("status", ""),
                _percent(payload.get("progress")),
                note,
                str(event.seq),
            )
        )
    fold()
    for attempt in taken_over:
        where = f" on {attempt.worker}" if attempt.worker else ""
        note = f"Attempt {attempt.number} lost{where} (its worker stopped beating); a new delivery took it over."
        rows.append(TimelineRow(attempt.finished_at, "attempt lost", "running", "—", note, ""))
    rows.sort(key=lambda row: row.at)
    return rows
