"""Where commands print: results on stdout, progress and notes on stderr."""

from __future__ import annotations

import sys

from rich.console import Console

err_console = Console(stderr=True)
# Piped output (CI logs, files) gets room for the result tables instead of rich's 80 columns.
out_console = Console(width=None if sys.stdout.isatty() else 140)
