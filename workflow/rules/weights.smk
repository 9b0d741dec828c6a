# Model weights: downloaded once on the submit host (local rules: compute nodes may be offline), verified by
# size and sha256, written atomically. Compute jobs only ever load these verified local files.


rule weights_fetch:
    localrule: True
    output:
        f"{WEIGHTS_DIR}/{{filename}}",
    log:
        f"{WEIGHTS_DIR}/logs/{{filename}}.log",
    wildcard_constraints:
        filename="|".join(w.filename.replace(".", r"\.") for w in WEIGHTS.values() if not w.tiny),
    params:
        name=lambda w: WEIGHT_BY_FILE[w.filename],
    retries: 2
    run:
        fetch_weights_job(params.name, output[0], log[0])


rule weights_tiny:
    localrule: True
    output:
        clip=f"{WEIGHTS_DIR}/{WEIGHTS['tiny_clip'].filename}",
        sam=f"{WEIGHTS_DIR}/{WEIGHTS['tiny_sam'].filename}",
    log:
        f"{WEIGHTS_DIR}/logs/tiny.log",
    params:
        seed=0,
    run:
        make_tiny_job(output.clip, output.sam, params.seed, log[0])
