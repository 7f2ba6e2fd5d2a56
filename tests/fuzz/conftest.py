"""The fuzz tests count their examples (listed in the terminal summary) and catch hangs: an
example running past ``HANG_SECONDS`` ends the run (exit status 1) after writing every thread's
traceback to ``fuzz-hang.txt`` in pytest's base temporary folder."""

import faulthandler

import pytest

HANG_SECONDS = 120
"""An example that runs longer is a hang."""

_COUNTS: dict[str, int] = {}


class Examples:
    """Counts the examples of one fuzz test; call it at the start of each example."""

    def __init__(self, log) -> None:
        self.count = 0
        self.log = log

    def __call__(self) -> None:
        self.count += 1
        faulthandler.dump_traceback_later(HANG_SECONDS, exit=True, file=self.log)


@pytest.fixture
def examples(request, tmp_path_factory):
    with open(tmp_path_factory.getbasetemp() / "fuzz-hang.txt", "w") as log:
        counter = Examples(log)
        try:
            yield counter
        finally:
            faulthandler.cancel_dump_traceback_later()
            _COUNTS[request.node.nodeid] = counter.count


def pytest_terminal_summary(terminalreporter):
    if _COUNTS:
        terminalreporter.section("fuzz examples")
        for nodeid, count in _COUNTS.items():
            terminalreporter.write_line(f"{count:6d}  {nodeid}")
