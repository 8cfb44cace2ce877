"""DuckDB views over the gold layer's Parquet parts, for the CLI and notebooks.

Here, not in sunrise_common: only the CLI (and the tests) query the dataset with DuckDB; the
services write it, and duckdb is the CLI's dependency (cli/pyproject.toml), not the library's.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import duckdb

from sunrise_common.dataset import TABLES, Dataset


def duckdb_views(root: Path, con: duckdb.DuckDBPyConnection | None = None, *,
                 memory_limit: str | None = "1GB") -> duckdb.DuckDBPyConnection:
    """A DuckDB connection (``con`` or a new in-memory one) with four views over ``root``:
    ``training_rows_all`` and ``night_scores_all`` (every part) and ``training_rows`` and
    ``night_scores`` (the newest part per night). A table with no part yet gets no view.

    The newest-part views read the files :meth:`sunrise_common.dataset.Dataset.latest` picks (their footers decide),
    not a window over every row: DuckDB then streams them, and an aggregate over 2,000 nights
    holds a few MB instead of every row (benchmarks/dataset_bench.py). :func:`sunrise_common.dataset.newest_view_sql`
    is the same rule as one query (BigQuery's views). ``memory_limit`` caps DuckDB's own memory
    (it spills to disk beyond), None leaves DuckDB's default (80 % of RAM)."""
    con = con if con is not None else duckdb.connect()
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    data = Dataset(root)

    def files(paths: Iterable[Path]) -> str:
        return "[" + ", ".join("'" + Path(p).as_posix().replace("'", "''") + "'" for p in paths) + "]"

    for table in TABLES:
        parts = data.parts(table)
        if not parts:
            continue
        options = "hive_partitioning = true, union_by_name = true"
        con.execute(f"CREATE OR REPLACE VIEW {table}_all AS SELECT * FROM read_parquet("
                    f"{files(p.path for p in parts)}, {options})")
        con.execute(f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM read_parquet("
                    f"{files(p.path for p in data.latest(table, parts=parts))}, {options})")
    return con
