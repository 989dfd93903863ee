# The job specs, as files the jobs read (not on their command lines, so each printed command is
# one short line). A spec rule's params are the spec: a change of a method's settings reruns the
# spec rule of the jobs holding that method (Snakemake's params trigger), whose newer file reruns
# those jobs (their input), and the run cache (dmlbench.train.run_cache) restores the runs whose
# own spec did not change: exactly that method retrains. Written by Snakemake itself (`run:`,
# local: no job waits in a cluster queue to write a file).


rule spec_prepare:
    output:
        spec_file("prepare", "{dataset}"),
    log:
        "logs/specs/prepare/{dataset}.log",
    params:
        spec=prepare_spec,
    localrule: True
    run:
        write_spec(output[0], params.spec, log[0])


rule spec_train:
    output:
        spec_file("train", GROUP_PATH),
    log:
        f"logs/specs/train/{GROUP_PATH}.log",
    params:
        spec=job_train_specs,
    wildcard_constraints:
        n_per_class="|".join(GRID_SIZES),
    localrule: True
    run:
        write_spec(output[0], params.spec, log[0])


if ANNEX_SIZES:

    use rule spec_train as spec_train_annex with:
        output:
            spec_file("train", ANNEX_GROUP_PATH),
        log:
            f"logs/specs/train/{ANNEX_GROUP_PATH}.log",
        params:
            spec=job_annex_specs,


rule spec_score:
    output:
        spec_file("score"),
    log:
        "logs/specs/score.log",
    params:
        spec=job_score_spec,
    localrule: True
    run:
        write_spec(output[0], params.spec, log[0])


rule spec_config:
    output:
        spec_file("config"),
    log:
        "logs/specs/config.log",
    params:
        spec=config_spec,
    localrule: True
    run:
        write_spec(output[0], params.spec, log[0])
