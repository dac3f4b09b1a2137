"""Progress of long work, for whoever watches: nothing in Dagster (its logs say it), a bar in the CLI."""


class ProgressReporter:
    """Reports nothing; the CLI swaps in a progress bar."""

    def start(self, total: int, description: str) -> None:
        pass

    def advance(self, label: str = "") -> None:
        pass

    def finish(self) -> None:
        pass


class TqdmProgress(ProgressReporter):
    """A tqdm bar on stderr."""

    def __init__(self):
        self._bar = None

    def start(self, total: int, description: str) -> None:
        from tqdm import tqdm

        self.finish()
        self._bar = tqdm(total=total, desc=description, unit="link", dynamic_ncols=True)

    def advance(self, label: str = "") -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(label[-50:], refresh=False)
            self._bar.update(1)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
