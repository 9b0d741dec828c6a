# Stable names results/{dataset}/{alias} -> store/{stage}/{key}: relative symlinks, re-pointed atomically.
# A scored stage's entry also gets metrics.json / scores*.json links to its current score entry, re-pointed
# here (the scores param), so results/{dataset}/seeds/metrics.json always shows the current score.
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
        scores=alias_scores,
    run:
        alias_job(params.target, output[0], log[0], params.scores)
