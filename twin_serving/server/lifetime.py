"""Worker processes end with `twin serve`: LitServe's API servers and inference workers would otherwise
outlive a `kill -9` of the main process and keep the port (a restart then fails: address in use)."""

import ctypes
import multiprocessing
import os
import signal
from collections.abc import Callable

PR_SET_PDEATHSIG = 1


def exit_with_parent(parent: int | None = None) -> None:
    """Have the kernel send this process SIGTERM when its parent dies (Linux); exit now if `parent` (the
    pid that started this process: multiprocessing's parent by default) has died already."""
    if parent is None:
        started_by = multiprocessing.parent_process()
        parent = started_by.pid if started_by else os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: LitServe's own shutdown is all there is
        return
    if os.getppid() != parent:  # reparented: the parent died before the request took effect
        os._exit(0)


def forked_children_exit_with_parent() -> None:
    """From now on every process this one forks (LitServe's API servers) ends when it does."""
    parent = os.getpid()  # not the child's getppid() after the fork: the parent may be gone by then
    os.register_at_fork(after_in_child=lambda: exit_with_parent(parent))


def end_now(signum: int, cleanup: Callable[[], None]) -> None:
    """Run `cleanup`, then end as signal `signum` would, quietly (no KeyboardInterrupt traceback from a
    worker that LitServe, or its parent's death, is stopping)."""
    cleanup()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def end_on_signal(cleanup: Callable[[], None]) -> None:
    """From now on SIGTERM or SIGINT runs `cleanup` and ends this process."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda received, frame: end_now(received, cleanup))
