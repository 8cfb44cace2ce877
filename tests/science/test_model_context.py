"""Context suffixes used by the packaged logistic-1 model (numpy-only, sunrise_algo.builtin.model)."""

from __future__ import annotations

import numpy as np

from sunrise_algo.builtin.model import context_column


def test_nightlog_is_log_ratio_to_the_night_median_and_ignores_nonpositive():
    x = np.array([1.0, 2.0, 4.0, np.nan, 0.0])
    out = context_column({"a": x}, "a@nightlog")
    np.testing.assert_allclose(out[:3], np.log([0.5, 1.0, 2.0]))
    assert np.isnan(out[3]) and np.isnan(out[4])


def test_context_suffixes_chain_left_to_right():
    x = np.array([1.0, 2.0, 4.0, 2.0, 2.0])
    chained = context_column({"a": x}, "a@nightlog@mean3")
    manual = np.convolve(np.pad(np.log(x / 2.0), 1), np.ones(3) / 3, "valid")
    np.testing.assert_allclose(chained, manual)
    np.testing.assert_allclose(context_column({"a": x}, "a@mean3"),
                               np.convolve(np.pad(x, 1), np.ones(3) / 3, "valid"))
