"""dmlbench: deep metric learning as anomaly detection, benchmarked reproducibly."""

__version__ = "0.1.0"

#: The study's order of the heads: every table and chart lists the methods so, each head's variants
#: together under it (dmlbench.config.methods.method_order), then pytorch-metric-learning losses, then
#: any other label alphabetically.
METHOD_ORDER = ("conventional", "l2softmax", "arcface", "cosface", "sphereface", "centerloss")
