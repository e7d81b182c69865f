"""pytest plugin of `python -m rehearsal`: each scenario's test verdict goes into report.json, then the table."""

from pathlib import Path

import pytest

from rehearsal import report

REPORT = Path(__file__).resolve().parents[1] / "build" / "rehearsal" / "report.json"
# The worst verdict of a scenario's tests is the scenario's.
SEVERITY = ["passed", "xfailed", "xpassed", "failed", "error"]


class Verdicts:
    def __init__(self) -> None:
        self.by_scenario: dict[str, str] = {}

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
        outcome = yield
        result: pytest.TestReport = outcome.get_result()
        marker = item.get_closest_marker("rehearsal")
        if marker is None or not marker.args:
            return
        if result.when == "call" or (result.when == "setup" and result.outcome != "passed"):
            if hasattr(result, "wasxfail"):
                verdict = "xfailed" if result.skipped else "xpassed"
            else:
                verdict = {"passed": "passed", "failed": "failed"}.get(result.outcome, "error")
            scenario = marker.args[0]
            before = self.by_scenario.get(scenario, "passed")
            self.by_scenario[scenario] = max(before, verdict, key=SEVERITY.index)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not REPORT.exists():
            terminalreporter.write_line("no rehearsal report was written")
            return
        entries = report.read(REPORT)
        for entry in entries:
            entry["test"] = self.by_scenario.get(entry["scenario"], "not run")
        report.write(entries, REPORT)
        terminalreporter.write_sep("=", "rollout rehearsal")
        terminalreporter.write_line(report.table(entries))
        terminalreporter.write_line(f"report: {REPORT}")


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(Verdicts(), "rehearsal-verdicts")
