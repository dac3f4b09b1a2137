"""Pictures for asset metadata: PNG plots embedded in Markdown, which the Dagster UI renders inline."""

import base64
import io
from collections.abc import Callable


def _plot_markdown(draw: Callable, title: str, x_label: str, y_label: str) -> str:
    import matplotlib

    matplotlib.use("Agg")  # no display here, and none needed
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(6, 3.2), dpi=100)
    draw(axes)
    axes.set(title=title, xlabel=x_label, ylabel=y_label)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    pyplot.close(figure)
    return f"![{title}](data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()})"


def line_plot_markdown(x: list[float], y: list[float], title: str, x_label: str, y_label: str) -> str:
    return _plot_markdown(lambda axes: axes.plot(x, y, linewidth=1.5), title, x_label, y_label)


def histogram_markdown(series: dict[str, list[float]], title: str, x_label: str, bins: int = 20) -> str:
    """One histogram per named series, overlaid."""
    def draw(axes) -> None:
        for label, values in series.items():
            if values:
                axes.hist(values, bins=bins, alpha=0.6, label=f"{label} ({len(values)})")
        axes.legend()

    return _plot_markdown(draw, title, x_label, "count")


def bar_chart_markdown(values: dict[str, float], title: str, y_label: str) -> str:
    """One bar per named value (a metric across models)."""
    def draw(axes) -> None:
        bars = axes.bar(list(values), list(values.values()), color="#4c72b0")
        axes.bar_label(bars, fmt="%.3f")

    return _plot_markdown(draw, title, "", y_label)
