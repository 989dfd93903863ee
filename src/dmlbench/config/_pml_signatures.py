"""pytorch-metric-learning's loss and miner constructors (generated: do not edit).

Written by `python -m dmlbench.config.pml_params --write` from the installed package; read by
dmlbench.config.pml_params (the config check, without torch)."""

PML_VERSION = "2.9.0"

LOSSES = {
    "AngularLoss": {"logits": False, "supplied": [], "params": {"alpha": 40}},
    "ArcFaceLoss": {
        "logits": True,
        "supplied": ["num_classes", "embedding_size"],
        "params": {"margin": 28.6, "scale": 64},
    },
    "CircleLoss": {"logits": False, "supplied": [], "params": {"m": 0.4, "gamma": 80}},
    "ContrastiveLoss": {"logits": False, "supplied": [], "params": {"pos_margin": 0, "neg_margin": 1}},
    "CosFaceLoss": {
        "logits": True,
        "supplied": ["num_classes", "embedding_size"],
        "params": {"margin": 0.35, "scale": 64},
    },
    "DynamicSoftMarginLoss": {
        "logits": False,
        "supplied": [],
        "params": {"min_val": -2.0, "num_bins": 10, "momentum": 0.01},
    },
    "FastAPLoss": {"logits": False, "supplied": [], "params": {"num_bins": 10}},
    "GeneralizedLiftedStructureLoss": {"logits": False, "supplied": [], "params": {"neg_margin": 1, "pos_margin": 0}},
    "InstanceLoss": {"logits": False, "supplied": [], "params": {"gamma": 64}},
    "IntraPairVarianceLoss": {"logits": False, "supplied": [], "params": {"pos_eps": 0.01, "neg_eps": 0.01}},
    "LargeMarginSoftmaxLoss": {
        "logits": True,
        "supplied": ["num_classes", "embedding_size"],
        "params": {"margin": 4, "scale": 1},
    },
    "LiftedStructureLoss": {"logits": False, "supplied": [], "params": {"neg_margin": 1, "pos_margin": 0}},
    "MarginLoss": {
        "logits": False,
        "supplied": [],
        "params": {"margin": 0.2, "nu": 0, "beta": 1.2, "triplets_per_anchor": "all", "learn_beta": False},
    },
    "MultiSimilarityLoss": {"logits": False, "supplied": [], "params": {"alpha": 2, "beta": 50, "base": 0.5}},
    "NCALoss": {"logits": False, "supplied": [], "params": {"softmax_scale": 1}},
    "NPairsLoss": {"logits": False, "supplied": [], "params": {}},
    "NTXentLoss": {"logits": False, "supplied": [], "params": {"temperature": 0.07}},
    "NormalizedSoftmaxLoss": {
        "logits": True,
        "supplied": ["num_classes", "embedding_size"],
        "params": {"temperature": 0.05},
    },
    "P2SGradLoss": {"logits": False, "supplied": ["descriptors_dim", "num_classes"], "params": {}},
    "PNPLoss": {"logits": False, "supplied": [], "params": {"b": 2, "alpha": 1, "anneal": 0.01, "variant": "O"}},
    "ProxyAnchorLoss": {
        "logits": True,
        "supplied": ["num_classes", "embedding_size"],
        "params": {"margin": 0.1, "alpha": 32},
    },
    "ProxyNCALoss": {"logits": True, "supplied": ["num_classes", "embedding_size"], "params": {"softmax_scale": 1}},
    "RankedListLoss": {
        "logits": False,
        "supplied": [],
        "params": {"margin": "<required>", "Tn": "<required>", "imbalance": 0.5, "alpha": None, "Tp": 0},
    },
    "SignalToNoiseRatioContrastiveLoss": {
        "logits": False,
        "supplied": [],
        "params": {"pos_margin": 0, "neg_margin": 1},
    },
    "SoftTripleLoss": {
        "logits": True,
        "supplied": ["num_classes", "embedding_size"],
        "params": {"centers_per_class": 10, "la": 20, "gamma": 0.1, "margin": 0.01},
    },
    "SphereFaceLoss": {
        "logits": True,
        "supplied": ["num_classes", "embedding_size"],
        "params": {"margin": 4, "scale": 1},
    },
    "SubCenterArcFaceLoss": {
        "logits": True,
        "supplied": ["num_classes", "embedding_size"],
        "params": {"margin": 28.6, "scale": 64, "sub_centers": 3},
    },
    "SupConLoss": {"logits": False, "supplied": [], "params": {"temperature": 0.1}},
    "ThresholdConsistentMarginLoss": {
        "logits": False,
        "supplied": [],
        "params": {"lambda_plus": 1.0, "lambda_minus": 1.0, "margin_plus": 0.9, "margin_minus": 0.5},
    },
    "TripletMarginLoss": {
        "logits": False,
        "supplied": [],
        "params": {"margin": 0.05, "swap": False, "smooth_loss": False, "triplets_per_anchor": "all"},
    },
    "TupletMarginLoss": {"logits": False, "supplied": [], "params": {"margin": 5.73, "scale": 64}},
}

MINERS = {
    "AngularMiner": {"params": {"angle": 20}},
    "BatchEasyHardMiner": {
        "params": {
            "pos_strategy": "easy",
            "neg_strategy": "semihard",
            "allowed_pos_range": None,
            "allowed_neg_range": None,
        }
    },
    "BatchHardMiner": {"params": {"allowed_pos_range": None, "allowed_neg_range": None}},
    "DistanceWeightedMiner": {"params": {"cutoff": 0.5, "nonzero_loss_cutoff": 1.4}},
    "HDCMiner": {"params": {"filter_percentage": 0.5}},
    "MultiSimilarityMiner": {"params": {"epsilon": 0.1}},
    "PairMarginMiner": {"params": {"pos_margin": 0.2, "neg_margin": 0.8}},
    "TripletMarginMiner": {"params": {"margin": 0.2, "type_of_triplets": "all"}},
    "UniformHistogramMiner": {"params": {"num_bins": 100, "pos_per_bin": 10, "neg_per_bin": 10}},
}
