"""NCRONTAB, the six-field schedule format of Azure Functions timer triggers.

``second minute hour day month day-of-week``; each field ``*``, a value, a range
``a-b``, a step ``*/n`` or ``a-b/n``, or a comma list of those. Months and weekdays
also by English abbreviation (``Jan``, ``Mon``); weekday 0 (and 7) is Sunday. As in
NCrontab, a time matches when every field matches.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

_MONTHS = {
    name: number
    for number, name in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1
    )
}
_WEEKDAYS = {name: number for number, name in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("second", 0, 59, {}),
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 0, 7, _WEEKDAYS),
)
# Beyond this, no time can match (e.g. 30 February): stop looking.
_SEARCH_LIMIT = timedelta(days=366 * 5)


class ScheduleError(ValueError):
    pass


@dataclass(frozen=True)
class Schedule:
    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]

    @classmethod
    def parse(cls, expression: str) -> Schedule:
        fields = expression.split()
        if len(fields) != 6:
            raise ScheduleError(
                f"{expression!r} has {len(fields)} fields; NCRONTAB has six: second minute hour day month day-of-week"
            )
        sets = [_parse_field(text, *spec) for text, spec in zip(fields, _FIELDS, strict=True)]
        weekdays = frozenset(day % 7 for day in sets[5])
        return cls(expression, sets[0], sets[1], sets[2], sets[3], sets[4], weekdays)

    def next_after(self, moment: datetime) -> datetime:
        """The first time strictly after ``moment`` that the schedule fires."""
        t = moment.replace(microsecond=0) + timedelta(seconds=1)
        limit = moment + _SEARCH_LIMIT
        while t <= limit:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0, second=0) + timedelta(days=32)).replace(day=1)
            elif t.day not in self.days or _weekday(t) not in self.weekdays:
                t = t.replace(hour=0, minute=0, second=0) + timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0, second=0) + timedelta(hours=1)
            elif t.minute not in self.minutes:
                t = t.replace(second=0) + timedelta(minutes=1)
            elif t.second not in self.seconds:
                t += timedelta(seconds=1)
            else:
                return t
        raise ScheduleError(f"{self.expression!r} never fires")


def _weekday(moment: datetime) -> int:
    return (moment.weekday() + 1) % 7  # Python: Monday=0; NCRONTAB: Sunday=0


def _parse_field(text: str, name: str, low: int, high: int, names: dict[str, int]) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = _number(step_text, name, names={}) if step_text else 1
        if step < 1:
            raise ScheduleError(f"{name}: step must be at least 1 in {part!r}")
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = _number(first, name, names), _number(last, name, names)
        else:
            start = _number(base, name, names)
            end = high if step_text else start
        if not low <= start <= end <= high:
            raise ScheduleError(f"{name}: {part!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def _number(text: str, name: str, names: dict[str, int]) -> int:
    key = text.strip().lower()
    if key in names:
        return names[key]
    # isdigit() alone admits "²" and other non-ASCII digits that int() rejects or reads.
    if not (key.isascii() and key.isdigit()):
        raise ScheduleError(f"{name}: {text!r} is not a number")
    return int(key)
