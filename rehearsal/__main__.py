"""`python -m rehearsal` (`make rehearsal`): every scenario, a table, and build/rehearsal/report.json.

The scenarios are tests (tests/test_rehearsal_scenarios.py): this runs them with pytest and a plugin that
adds each scenario's verdict to the report and prints the table. Extra arguments go to pytest.
"""

import sys

import pytest

from rehearsal.pipeline import REPOSITORY


def main() -> int:
    return int(
        pytest.main(
            [
                str(REPOSITORY / "tests" / "test_rehearsal_scenarios.py"),
                "-p",
                "rehearsal.pytest_plugin",
                "-m",
                "rehearsal",
                "--durations=0",
                *sys.argv[1:],
            ]
        )
    )


if __name__ == "__main__":
    sys.exit(main())
