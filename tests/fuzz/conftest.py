"""The fuzz tests count their examples and, where they record them, their outcomes (listed in the
terminal summary), and catch hangs: an
example running past ``HANG_SECONDS`` ends the run (exit status 1) after writing every thread's
traceback to ``fuzz-hang.txt`` in pytest's base temporary folder."""

import faulthandler
from collections import Counter

import pytest

HANG_SECONDS = 120
"""An example that runs longer is a hang."""

_COUNTS: dict[str, int] = {}
_OUTCOMES: dict[str, Counter] = {}


class Examples:
    """Counts the examples of one fuzz test; call it at the start of each example."""

    def __init__(self, log) -> None:
        self.count = 0
        self.log = log
        self.outcomes: Counter = Counter()

    def __call__(self) -> None:
        self.count += 1
        faulthandler.dump_traceback_later(HANG_SECONDS, exit=True, file=self.log)

    def outcome(self, name: str) -> None:
        """Count an outcome of the current example (``"exit 0"``), for the summary."""
        self.outcomes[name] += 1


@pytest.fixture
def examples(request, tmp_path_factory):
    with open(tmp_path_factory.getbasetemp() / "fuzz-hang.txt", "w") as log:
        counter = Examples(log)
        try:
            yield counter
        finally:
            faulthandler.cancel_dump_traceback_later()
            _COUNTS[request.node.nodeid] = counter.count
            if counter.outcomes:
                _OUTCOMES[request.node.nodeid] = counter.outcomes


def pytest_terminal_summary(terminalreporter):
    if _COUNTS:
        terminalreporter.section("fuzz examples")
        for nodeid, count in _COUNTS.items():
            outcomes = sorted(_OUTCOMES.get(nodeid, {}).items())
            listed = ", ".join(f"{n} {name}" for name, n in outcomes)
            terminalreporter.write_line(
                f"{count:6d}  {nodeid}" + (f" ({listed})" if listed else "")
            )
