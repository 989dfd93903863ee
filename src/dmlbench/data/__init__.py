"""The data stage (rule ``prepare``): dataset sources read into one in-memory form and its
results/data/{dataset}.npz file (``sources``), and the cases and splits every stage agrees on
(``splits``: which classes are normal in case k, the subsampled training set, the validation
carve-out).

The train stage reads both; the report reads the npz for the worst-misses images. Light: numpy
only at import (a source's reader imports its own package - torchvision, scikit-learn, Pillow -
when it reads).
"""
