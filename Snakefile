# dmlbench: the whole study from a config to a report.
#   snakemake --cores 8 --resources gpu=1                         (config/config.yaml)
#   snakemake --cores 2 --configfile config/demo.yaml             (CPU demo, data shipped with scikit-learn)
from snakemake.utils import min_version

min_version("8.0")


# The full study by default; a --configfile replaces it rather than merging into it (a merge
# would add the full study's datasets and methods to a small config).
if not workflow.overwrite_configfiles:

    configfile: f"{workflow.basedir}/config/config.yaml"


include: "rules/common.smk"
include: "rules/specs.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/tune.smk"
include: "rules/score.smk"
include: "rules/aggregate.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        final_targets(),
