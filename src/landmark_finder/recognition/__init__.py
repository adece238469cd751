"""The recognizer: the on-disk index, building and updating it, calibration, and evaluation."""
