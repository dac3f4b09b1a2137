"""Pictures for asset metadata: PNG plots embedded in Markdown, which the Dagster UI renders inline."""

import base64
import io


def line_plot_markdown(x: list[float], y: list[float], title: str, x_label: str, y_label: str) -> str:
    import matplotlib

    matplotlib.use("Agg")  # no display here, and none needed
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(6, 3.2), dpi=100)
    axes.plot(x, y, linewidth=1.5)
    axes.set(title=title, xlabel=x_label, ylabel=y_label)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    pyplot.close(figure)
    return f"![{title}](data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()})"
