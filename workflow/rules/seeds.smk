# Stages 4 and 7: SAMS seeding from the SAM masks and the CAMs; one job per shard, then a finalize job writing
# the palette PNGs (scored by rule score, workflow/rules/scores.smk).


rule seeds_coarse:
    input:
        unpack(upstream_of("seeds_coarse")),
    output:
        shard="results/{dataset}/store/seeds_coarse/{key}/{shard}.h5",
    log:
        "results/{dataset}/logs/seeds_coarse/{key}/{shard}.log",
    benchmark:
        "results/{dataset}/benchmarks/seeds_coarse/{key}/{shard}.tsv"
    params:
        spec=spec_of("seeds_coarse"),
        partial=partial_of("seeds_coarse"),
    threads: 4
    resources:
        gpu=1,
    conda:
        "../../envs/fmwsss.yaml"
    script:
        "../scripts/seeds_coarse.py"


rule seeds_coarse_finalize:
    input:
        shards=shards_of("seeds_coarse"),
    output:
        spec="results/{dataset}/store/seeds_coarse/{key}/spec.json",
    log:
        "results/{dataset}/logs/seeds_coarse/{key}/finalize.log",
    params:
        spec=spec_of("seeds_coarse"),
    threads: 1
    conda:
        "../../envs/fmwsss.yaml"
    script:
        "../scripts/seeds_coarse_finalize.py"


rule seeds_fine:
    input:
        unpack(upstream_of("seeds_fine")),
    output:
        shard="results/{dataset}/store/seeds_fine/{key}/{shard}.h5",
    log:
        "results/{dataset}/logs/seeds_fine/{key}/{shard}.log",
    benchmark:
        "results/{dataset}/benchmarks/seeds_fine/{key}/{shard}.tsv"
    params:
        spec=spec_of("seeds_fine"),
        partial=partial_of("seeds_fine"),
    threads: 4
    resources:
        gpu=1,
    conda:
        "../../envs/fmwsss.yaml"
    script:
        "../scripts/seeds_fine.py"


rule seeds_fine_finalize:
    input:
        shards=shards_of("seeds_fine"),
    output:
        spec="results/{dataset}/store/seeds_fine/{key}/spec.json",
    log:
        "results/{dataset}/logs/seeds_fine/{key}/finalize.log",
    params:
        spec=spec_of("seeds_fine"),
    threads: 1
    conda:
        "../../envs/fmwsss.yaml"
    script:
        "../scripts/seeds_fine_finalize.py"
