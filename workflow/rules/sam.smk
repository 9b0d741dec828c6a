# Stage 1: SAM automatic masks, one job per shard of images, then a light finalize job.


rule sam_masks:
    input:
        unpack(upstream_of("sam_masks")),
    output:
        shard="results/{dataset}/store/sam_masks/{key}/{shard}.h5",
    log:
        "results/{dataset}/logs/sam_masks/{key}/{shard}.log",
    benchmark:
        "results/{dataset}/benchmarks/sam_masks/{key}/{shard}.tsv"
    params:
        spec=spec_of("sam_masks"),
        partial=partial_of("sam_masks"),
        weights=weights_name("sam"),
    threads: 4
    resources:
        gpu=1,
    conda:
        "../../envs/fmwsss.yaml"
    script:
        "../scripts/sam_masks.py"


rule sam_masks_finalize:
    localrule: True
    input:
        shards=shards_of("sam_masks"),
    output:
        spec="results/{dataset}/store/sam_masks/{key}/spec.json",
    log:
        "results/{dataset}/logs/sam_masks/{key}/finalize.log",
    params:
        spec=spec_of("sam_masks"),
    run:
        finalize_job(PLAN, input.shards, output.spec, params.spec, wildcards, log[0])
