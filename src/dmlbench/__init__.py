"""dmlbench: deep metric learning as anomaly detection, benchmarked reproducibly."""

__version__ = "0.1.0"
