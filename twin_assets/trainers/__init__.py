"""Trainers that run as external processes, launched through Dagster Pipes: nothing here imports Dagster
(only `dagster-pipes`) or the rest of the project, so a trainer runs in any environment that has its own
libraries: this project's for trl, another virtual environment for axolotl, a GPU pod in the cluster."""
