from __future__ import annotations

from datetime import UTC, datetime

import pytest

from copy_ops.core.ncrontab import Schedule, ScheduleError

T = datetime(2026, 11, 24, 2, 0, 30, tzinfo=UTC)  # a Tuesday


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("0 */1 * * * *", T, datetime(2026, 11, 24, 2, 1, 0, tzinfo=UTC)),
        ("*/5 * * * * *", T, datetime(2026, 11, 24, 2, 0, 35, tzinfo=UTC)),
        ("30 * * * * *", T, datetime(2026, 11, 24, 2, 1, 30, tzinfo=UTC)),
        ("0 0 * * * *", T, datetime(2026, 11, 24, 3, 0, 0, tzinfo=UTC)),
        ("0 30 9 * * Mon-Fri", datetime(2026, 11, 28, tzinfo=UTC), datetime(2026, 11, 30, 9, 30, tzinfo=UTC)),
        ("0 0 0 * * 0", T, datetime(2026, 11, 29, tzinfo=UTC)),
        ("0 0 0 * * 7", T, datetime(2026, 11, 29, tzinfo=UTC)),
        ("0 0 12 1 Jan *", T, datetime(2027, 1, 1, 12, tzinfo=UTC)),
        ("0 0 0 29 2 *", T, datetime(2028, 2, 29, tzinfo=UTC)),
        ("0 5,10-12/2 * * * *", T, datetime(2026, 11, 24, 2, 5, tzinfo=UTC)),
        ("0 15/15 * * * *", T, datetime(2026, 11, 24, 2, 15, tzinfo=UTC)),
    ],
)
def test_next_after(expression: str, after: datetime, expected: datetime) -> None:
    assert Schedule.parse(expression).next_after(after) == expected


@pytest.mark.parametrize(
    "expression",
    [
        "",
        "* * * * *",
        "* * * * * * *",
        "60 * * * * *",
        "* * 24 * * *",
        "* * * 0 * *",
        "* * * * 13 *",
        "* * * * * 8",
        "*/0 * * * * *",
        "a * * * * *",
        "² * * * * *",
        "\u0661 * * * * *",
        "5-1 * * * * *",
        "* * * * Foo *",
    ],
)
def test_invalid_expressions_are_refused(expression: str) -> None:
    with pytest.raises(ScheduleError):
        Schedule.parse(expression)


def test_an_impossible_date_never_fires() -> None:
    with pytest.raises(ScheduleError, match="never fires"):
        Schedule.parse("0 0 0 31 2 *").next_after(T)
