"""A spreadsheet-sized evaluation harness."""

from tinyevals.rows import Row
from tinyevals.runner import Report, run

__all__ = ["Report", "Row", "run"]
