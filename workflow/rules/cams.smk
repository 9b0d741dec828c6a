# Stages 3 and 6: CAMs from the learned prompts, refined by CAA; one job per shard, then a light finalize
# job (scored by rule score, workflow/rules/scores.smk).


rule cams_coarse_dump:
    input:
        unpack(upstream_of("cams_coarse_dump")),
    output:
        shard="results/{dataset}/store/cams_coarse_dump/{key}/{shard}.h5",
    log:
        "results/{dataset}/logs/cams_coarse_dump/{key}/{shard}.log",
    benchmark:
        "results/{dataset}/benchmarks/cams_coarse_dump/{key}/{shard}.tsv"
    params:
        spec=spec_of("cams_coarse_dump"),
        partial=partial_of("cams_coarse_dump"),
    threads: 4
    resources:
        gpu=1,
    conda:
        "../../envs/fmwsss.yaml"
    script:
        "../scripts/cams_coarse_dump.py"


rule cams_coarse_dump_finalize:
    localrule: True
    input:
        shards=shards_of("cams_coarse_dump"),
    output:
        spec="results/{dataset}/store/cams_coarse_dump/{key}/spec.json",
    log:
        "results/{dataset}/logs/cams_coarse_dump/{key}/finalize.log",
    params:
        spec=spec_of("cams_coarse_dump"),
    run:
        finalize_job(PLAN, input.shards, output.spec, params.spec, wildcards, log[0])


rule cams_fine_dump:
    input:
        unpack(upstream_of("cams_fine_dump")),
    output:
        shard="results/{dataset}/store/cams_fine_dump/{key}/{shard}.h5",
    log:
        "results/{dataset}/logs/cams_fine_dump/{key}/{shard}.log",
    benchmark:
        "results/{dataset}/benchmarks/cams_fine_dump/{key}/{shard}.tsv"
    params:
        spec=spec_of("cams_fine_dump"),
        partial=partial_of("cams_fine_dump"),
    threads: 4
    resources:
        gpu=1,
    conda:
        "../../envs/fmwsss.yaml"
    script:
        "../scripts/cams_fine_dump.py"


rule cams_fine_dump_finalize:
    localrule: True
    input:
        shards=shards_of("cams_fine_dump"),
    output:
        spec="results/{dataset}/store/cams_fine_dump/{key}/spec.json",
    log:
        "results/{dataset}/logs/cams_fine_dump/{key}/finalize.log",
    params:
        spec=spec_of("cams_fine_dump"),
    run:
        finalize_job(PLAN, input.shards, output.spec, params.spec, wildcards, log[0])
