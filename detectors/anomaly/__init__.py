"""Online anomaly learning: per-sensor baselines and peer groups (``sensor.anomaly``).

- :mod:`citywatch.detectors.anomaly.bank`: per-sensor statistics of a sensor kind as numpy
  arrays, scored before learned, winsorised learning, calibrated thresholds.
- :mod:`citywatch.detectors.anomaly.sensor`: the per-sensor detector and the univariate
  ``score_one`` / ``learn_one`` API.
- :mod:`citywatch.detectors.anomaly.peer`: dwellings compared with their peers (the
  group-rental signal), with a river HalfSpaceTrees per peer class.
"""

from citywatch.detectors.anomaly.params import BaselineParams, PeerParams
from citywatch.detectors.anomaly.sensor import AnomalyScorer, SensorAnomalyDetector

__all__ = ["AnomalyScorer", "BaselineParams", "PeerParams", "SensorAnomalyDetector"]
