# Stable names results/{dataset}/{alias} -> store/{stage}/{key}: relative symlinks, re-pointed atomically.
# directory() is required (Snakemake follows the link when it checks the output) and makes Snakemake remove
# the old link itself, never the target.


rule alias:
    localrule: True
    input:
        alias_inputs,
    output:
        directory("results/{dataset}/{alias}"),
    log:
        "results/{dataset}/logs/alias_{alias}.log",
    params:
        target=alias_target,
    run:
        alias_job(params.target, output[0], log[0])
