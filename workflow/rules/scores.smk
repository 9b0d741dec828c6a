# Scoring against ground truth, out of the compute stages: one light job per scored stage (SCORES in
# fmwsss/pipeline/stages.py), keyed on the scored entry's key, the ground truth's digest and the settings it
# reads (eval for the CAM stages), so changing eval.cam_bg_power or correcting a mask reruns only these.
# Not a localrule: at COCO size it reads every CAM / seed and mask (minutes of one CPU core), which should
# not run on a cluster's login node; it holds no GPU.


rule score:
    input:
        entry=score_inputs,
    output:
        metrics=report(
            "results/{dataset}/store/score_{scored}/{key}/metrics.json",
            caption="../report/metrics.rst",
            category="metrics",
            subcategory="{scored}",
            labels={"dataset": "{dataset}", "stage": "{scored}"},
        ),
        spec="results/{dataset}/store/score_{scored}/{key}/spec.json",
    log:
        "results/{dataset}/logs/score_{scored}/{key}.log",
    benchmark:
        "results/{dataset}/benchmarks/score_{scored}/{key}.tsv"
    params:
        spec=score_spec,
    wildcard_constraints:
        scored="|".join(SCORES),
    threads: 1
    conda:
        "../../envs/fmwsss.yaml"
    script:
        "../scripts/score.py"
