"""Preparation of a Sunrise (chin IMU) night: the recording's EDF in, the prepared arrays and
``meta.json`` out (``prepare.prepare_sunrise``), which is what an algorithm reads
(``sunrise_algo.interface.PreparedNight``). A library, so that the sunrise_prep stage and the
CLI (``sunrise algo check`` prepares example nights) run the same code."""
