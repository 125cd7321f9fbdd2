"""The command line's watchdog: it fires for work that is late, and never after the work has ended (a
process that goes on, a test or a script calling the CLI, must not be ended by a finished eval's watch)."""

import threading

from tui.cli.pace import Pace


def test_a_watch_fires_when_late_and_never_after_its_work_ended():
    late, fired = Pace(0), threading.Event()
    late.allowed = 0.0
    late.watch(lambda seconds: fired.set())
    late.start()
    assert fired.wait(10)
    ended, wrongly = Pace(0), threading.Event()
    ended.allowed = 0.0
    ended.start()
    ended.end()  # the work is over (late as it would now be)
    ended.watch(lambda seconds: wrongly.set())
    assert ended.late() is None and not wrongly.wait(1.5)
