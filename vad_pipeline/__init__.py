"""vad-pipeline: staged, offline, object-centric video anomaly detection."""

__version__ = "0.1.0"
