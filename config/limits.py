"""Bounds shared by the settings and the command line's options (no imports: ``--help``
loads this)."""

from __future__ import annotations

# The longest timeout, wait, flush interval or deadline: a day. The clock's timers cannot
# hold much more (a year of seconds overflows them), and no wait of the toolkit needs it.
MAX_SECONDS = 86_400
# The longest retention: a century. Beyond it the cut-off leaves SQLite's integers.
MAX_RETENTION_DAYS = 36_500
