"""Reliability and abuse scenarios of the Sunrise pipeline (issue 8, ``make reliability``).

:mod:`reliability.scenarios` holds one function per scenario, each returning one row of the table
in ``RELIABILITY.md``; :mod:`reliability.run` runs them all at full size and writes that file;
``tests/reliability`` runs the same functions at CI size.
"""
