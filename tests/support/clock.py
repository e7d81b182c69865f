from datetime import date


class FixedClock:
    """A clock the test sets: "today" is whatever the test says it is."""

    def __init__(self, today: date) -> None:
        self.current = today

    def today(self) -> date:
        return self.current
