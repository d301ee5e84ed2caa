"""Latency on hardware you may not have: a per-op roofline over the meta trace.

``profile``: device profiles (the device table's GPUs, or a JSON file) and their
validation; ``cost``: one op's time on a profile; ``report``: :func:`predict` and the
per-layer :class:`PredictReport`; ``calibration``: :func:`calibrate`, which measures
this machine's profile.

(The package is not called ``predict``: ``archstat.predict`` is the function, and a
submodule of that name would shadow it once imported.)
"""

from archstat.predictor.calibration import calibrate
from archstat.predictor.profile import DeviceProfile, device_profile, load_profile
from archstat.predictor.report import LAYER_COLUMNS, PredictReport, predict, predict_analysis

__all__ = ["LAYER_COLUMNS", "DeviceProfile", "PredictReport", "calibrate", "device_profile",
           "load_profile", "predict", "predict_analysis"]
