"""Reliability and abuse scenarios of the Sunrise pipeline (issue 8, ``make reliability``).

:mod:`reliability.scenarios` holds one function per scenario (the abuse scenarios from
:mod:`reliability.abuse`), each returning one row of the table in ``RELIABILITY.md``, built on
:mod:`reliability.harness` (a stack on free ports), :mod:`reliability.census` (lost and duplicated
work) and :mod:`reliability.privacy` (the personal-data scanner); :mod:`reliability.run` runs them all at full size and writes that file;
``tests/reliability`` runs the same functions at CI size.
"""
