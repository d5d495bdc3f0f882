"""``soilwatch serve``, ``soilwatch db …`` and ``soilwatch admin …``; collected through entry points."""
