# Stage II: the segmenter (DeepLabV3, or Mask2Former with the voc/coco presets) trained on the fine seeds,
# evaluated where ground truth exists. The rule names keep `deeplab` (store paths of earlier runs stay valid).

from fmwsss.gpu_slots import visible_gpus


# The segmenter training's request: runtime.segmenter_gpus GPUs (data-parallel, global batch fixed). On a
# machine without a GPU those are cpu processes and hold one slot, as every GPU rule does there. Under SLURM
# the profile's set-resources `gpu` for deeplab_train is what the job is granted (it must match).
SEGMENTER_GPUS = Config(config).runtime["segmenter_gpus"] if visible_gpus(os.environ) else 1


rule deeplab_train:
    input:
        unpack(upstream_of("deeplab_train")),
    output:
        model="results/{dataset}/store/deeplab_train/{key}/model.pt",
        spec="results/{dataset}/store/deeplab_train/{key}/spec.json",
    log:
        "results/{dataset}/logs/deeplab_train/{key}.log",
    benchmark:
        "results/{dataset}/benchmarks/deeplab_train/{key}.tsv"
    params:
        spec=spec_of("deeplab_train"),
        partial=partial_of("deeplab_train"),
    threads: 4
    resources:
        gpu=SEGMENTER_GPUS,
    conda:
        "../../envs/fmwsss.yaml"
    script:
        "../scripts/deeplab_train.py"


rule deeplab_eval:
    input:
        unpack(upstream_of("deeplab_eval")),
    output:
        metrics=report(
            "results/{dataset}/store/deeplab_eval/{key}/metrics.json",
            caption="../report/metrics.rst",
            category="metrics",
            subcategory="deeplab_eval",
            labels={"dataset": "{dataset}", "stage": "deeplab_eval"},
        ),
        spec="results/{dataset}/store/deeplab_eval/{key}/spec.json",
    log:
        "results/{dataset}/logs/deeplab_eval/{key}.log",
    benchmark:
        "results/{dataset}/benchmarks/deeplab_eval/{key}.tsv"
    params:
        spec=spec_of("deeplab_eval"),
        partial=partial_of("deeplab_eval"),
    threads: 4
    resources:
        gpu=1,
    conda:
        "../../envs/fmwsss.yaml"
    script:
        "../scripts/deeplab_eval.py"
