"""One Cohen's kappa for sunalgo's nights, the pooled report and training (None where undefined)."""

from __future__ import annotations

import math

import pytest

from sunrise_common.agreement import cohen_kappa, kappa_from_confusion


def test_kappa_is_one_for_full_agreement_and_zero_for_chance():
    assert cohen_kappa(["W", "S", "S", "W"], ["W", "S", "S", "W"]) == 1.0
    # p_o = 0.5, p_e = 0.5: agreement no better than chance
    assert cohen_kappa(["W", "W", "S", "S"], ["W", "S", "W", "S"]) == 0.0


def test_kappa_of_a_textbook_table():
    # Cohen (1960)-style 2x2: 20 + 15 agree of 50; marginals 25/25 and 30/20 -> p_o 0.7, p_e 0.5
    assert kappa_from_confusion([[20, 5], [10, 15]]) == pytest.approx(0.4)


@pytest.mark.parametrize("a,b", [([], []), (["S", "S"], ["S", "S"])])
def test_kappa_is_none_where_it_is_undefined_never_nan(a, b):
    k = cohen_kappa(a, b)
    assert k is None and not (isinstance(k, float) and math.isnan(k))
    assert kappa_from_confusion([[0, 0], [0, 0]]) is None


def test_sunalgo_and_the_report_use_this_kappa():
    from sunalgo import agreement
    from sunrise_cli import report

    assert agreement.cohen_kappa is cohen_kappa and report.kappa_from_confusion is kappa_from_confusion
