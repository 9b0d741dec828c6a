# Model weights: downloaded once on the submit host (local rules: compute nodes may be offline), verified by
# size and sha256, written atomically. Compute jobs only ever load these verified local files: each declares
# the file's `<file>.sha256` sidecar, written by weights_verify (hashes once per file) or, for the tiny test
# models, by weights_tiny at creation, and refuses at start a file whose size or mtime moved since.
# Both are ancient() inputs of the GPU rules: the stage key already pins the expected digest, so touching a
# weight file or re-verifying it (which rewrites the sidecar) reruns nothing.


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


rule weights_verify:
    localrule: True
    input:
        ancient(f"{WEIGHTS_DIR}/{{filename}}"),
    output:
        f"{WEIGHTS_DIR}/{{filename}}{SIDECAR_SUFFIX}",
    log:
        f"{WEIGHTS_DIR}/logs/{{filename}}.verify.log",
    wildcard_constraints:
        filename="|".join(w.filename.replace(".", r"\.") for w in WEIGHTS.values() if not w.tiny),
    run:
        verify_weights_job(WEIGHT_BY_FILE[wildcards.filename], input[0], log[0])


rule weights_tiny:
    localrule: True
    output:
        clip=f"{WEIGHTS_DIR}/{WEIGHTS['tiny_clip'].filename}",
        sam=f"{WEIGHTS_DIR}/{WEIGHTS['tiny_sam'].filename}",
        clip_sidecar=f"{WEIGHTS_DIR}/{WEIGHTS['tiny_clip'].filename}{SIDECAR_SUFFIX}",
        sam_sidecar=f"{WEIGHTS_DIR}/{WEIGHTS['tiny_sam'].filename}{SIDECAR_SUFFIX}",
    log:
        f"{WEIGHTS_DIR}/logs/tiny.log",
    params:
        seed=0,
    run:
        make_tiny_job(output.clip, output.sam, params.seed, log[0])
