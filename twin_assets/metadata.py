"""Asset metadata a person reads in the Dagster UI: Markdown tables."""

import warnings

import dagster as dg

# A registry version's output (a model or a dataset, for the IO manager) carries its data version; Dagster
# marks that parameter beta, which is no news to whoever runs `twin demo`.
warnings.filterwarnings("ignore", category=dg.BetaWarning, message=".*data_version.*")


def markdown_table(header: list[str], rows: list[list]) -> str:
    def cell(value) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
