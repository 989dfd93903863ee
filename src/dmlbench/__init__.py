"""dmlbench: deep metric learning as anomaly detection, benchmarked reproducibly."""

__version__ = "0.1.0"

#: The study's order of the methods: every table and chart lists them so; a user's own head follows
#: alphabetically.
METHOD_ORDER = ("conventional", "l2softmax", "arcface", "cosface", "sphereface", "centerloss")
