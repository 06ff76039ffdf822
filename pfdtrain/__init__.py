"""pfdtrain: training system for vibration-based machine fault diagnosis."""

__version__ = "0.2.0"
