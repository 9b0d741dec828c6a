# Stages 2 and 5: prompt learning on frozen CLIP (one GPU job each, resumable from checkpoints).


rule prompts_cls_train:
    input:
        unpack(upstream_of("prompts_cls_train")),
    output:
        prompts="results/{dataset}/store/prompts_cls_train/{key}/prompts.pt",
        spec="results/{dataset}/store/prompts_cls_train/{key}/spec.json",
    log:
        "results/{dataset}/logs/prompts_cls_train/{key}.log",
    benchmark:
        "results/{dataset}/benchmarks/prompts_cls_train/{key}.tsv"
    params:
        spec=spec_of("prompts_cls_train"),
        partial=partial_of("prompts_cls_train"),
    threads: 4
    resources:
        gpu=1,
    conda:
        "../../envs/fmwsss.yaml"
    script:
        "../scripts/prompts_cls_train.py"


rule prompts_seg_train:
    input:
        unpack(upstream_of("prompts_seg_train")),
    output:
        prompts="results/{dataset}/store/prompts_seg_train/{key}/prompts.pt",
        spec="results/{dataset}/store/prompts_seg_train/{key}/spec.json",
    log:
        "results/{dataset}/logs/prompts_seg_train/{key}.log",
    benchmark:
        "results/{dataset}/benchmarks/prompts_seg_train/{key}.tsv"
    params:
        spec=spec_of("prompts_seg_train"),
        partial=partial_of("prompts_seg_train"),
    threads: 4
    resources:
        gpu=1,
    conda:
        "../../envs/fmwsss.yaml"
    script:
        "../scripts/prompts_seg_train.py"
