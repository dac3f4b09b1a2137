"""Progress of long work, for whoever watches: nothing in Dagster (its logs say it), a bar in the CLI."""


class ProgressReporter:
    """Reports nothing; the CLI swaps in a progress bar."""

    shows_bars = False  # whether a terminal is watching (a child process may then draw its own bar)

    def start(self, total: int, description: str, unit: str = "link") -> None:
        pass

    def advance(self, label: str = "", steps: int = 1) -> None:
        pass

    def finish(self) -> None:
        pass


class TqdmProgress(ProgressReporter):
    """A tqdm bar on stderr."""

    shows_bars = True

    def __init__(self):
        self._bar = None

    def start(self, total: int, description: str, unit: str = "link") -> None:
        from tqdm import tqdm

        self.finish()
        self._bar = tqdm(total=total, desc=description, unit=unit, dynamic_ncols=True)

    def advance(self, label: str = "", steps: int = 1) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(label[-50:], refresh=False)
            self._bar.update(steps)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
