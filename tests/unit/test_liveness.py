"""`liveness.Progress`: when a consumer counts as stuck."""

from services.common.liveness import Progress, stuck


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_idle_consumer_is_never_stuck():
    clock = Clock()
    progress = Progress("idle", clock)
    clock.now += 10_000
    assert progress.stuck(max_s=60) is None


def test_records_in_hand_with_no_commit_for_longer_than_the_bound_are_stuck():
    clock = Clock()
    progress = Progress("busy", clock)
    clock.now += 500  # idle time before records arrive does not count
    progress.took(3)
    clock.now += 60
    assert progress.stuck(max_s=60) is None
    clock.now += 1
    assert progress.stuck(max_s=60) == "busy has 3 records in hand and committed nothing for 61s"
    progress.committed(2)
    assert progress.in_hand == 1 and progress.stuck(max_s=60) is None  # a commit is progress
    clock.now += 61
    assert progress.stuck(max_s=60) is not None
    progress.committed()
    clock.now += 1000
    assert progress.stuck(max_s=60) is None


def test_more_records_do_not_reset_the_wait():
    clock = Clock()
    progress = Progress("piling", clock)
    progress.took(1)
    clock.now += 50
    progress.took(100)
    clock.now += 20
    assert progress.stuck(max_s=60) is not None


def test_a_stopped_consumer_is_stuck_at_once_and_stuck_lists_every_reason():
    clock = Clock()
    stopped, moving = Progress("dead", clock), Progress("alive", clock)
    stopped.stop(RuntimeError("fatal broker error"))
    assert stuck([stopped, moving], max_s=60) == ["dead stopped: RuntimeError('fatal broker error')"]
