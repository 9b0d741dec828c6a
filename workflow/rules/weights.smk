# Model weights: downloaded once on the submit host (local rules: compute nodes may be offline), verified by
# size and sha256, written atomically. Compute jobs only ever load these verified local files: each declares
# the file's `<file>.sha256` sidecar, written by weights_verify (hashes once per file) or, for the tiny test
# models, by weights_tiny at creation, and refuses at start a file whose size or mtime moved since.
# Both are ancient() inputs of the GPU rules: the stage key already pins the expected digest, so touching a
# weight file or re-verifying it (which rewrites the sidecar) reruns nothing.
# Full-size random test models (random_*) are made by weights_random, one job per file (the 2.4 GiB SAM and
# the CLIP independent), and verified like real checkpoints: their creation record is the expected digest.


rule weights_fetch:
    localrule: True
    output:
        f"{WEIGHTS_DIR}/{{filename}}",
    log:
        f"{WEIGHTS_DIR}/logs/{{filename}}.log",
    wildcard_constraints:
        filename="|".join(w.filename.replace(".", r"\.") for w in WEIGHTS.values() if not w.made_locally),
    params:
        name=lambda w: WEIGHT_BY_FILE[w.filename],
    retries: 2
    run:
        fetch_weights_job(params.name, output[0], log[0])


# update(): Snakemake must not delete the sidecar before the job, since for a random model the one its
# creation wrote is the reference the file is checked against (a real checkpoint's is the registry's).
rule weights_verify:
    localrule: True
    input:
        ancient(f"{WEIGHTS_DIR}/{{filename}}"),
    output:
        update(f"{WEIGHTS_DIR}/{{filename}}{SIDECAR_SUFFIX}"),
    log:
        f"{WEIGHTS_DIR}/logs/{{filename}}.verify.log",
    wildcard_constraints:
        filename="|".join(w.filename.replace(".", r"\.") for w in WEIGHTS.values() if not w.tiny),
    run:
        verify_weights_job(WEIGHT_BY_FILE[wildcards.filename], input[0], log[0])


# The tiny Swin (Mask2Former's test backbone) is made here too.
rule weights_tiny:
    localrule: True
    output:
        clip=f"{WEIGHTS_DIR}/{WEIGHTS['tiny_clip'].filename}",
        sam=f"{WEIGHTS_DIR}/{WEIGHTS['tiny_sam'].filename}",
        swin=f"{WEIGHTS_DIR}/{WEIGHTS['tiny_swin'].filename}",
        clip_sidecar=f"{WEIGHTS_DIR}/{WEIGHTS['tiny_clip'].filename}{SIDECAR_SUFFIX}",
        sam_sidecar=f"{WEIGHTS_DIR}/{WEIGHTS['tiny_sam'].filename}{SIDECAR_SUFFIX}",
        swin_sidecar=f"{WEIGHTS_DIR}/{WEIGHTS['tiny_swin'].filename}{SIDECAR_SUFFIX}",
    log:
        f"{WEIGHTS_DIR}/logs/tiny.log",
    params:
        seed=0,
    run:
        make_tiny_job(output.clip, output.sam, output.swin, params.seed, log[0])


# The file only: Snakemake touches it after the job, so the sidecar its creation wrote no longer describes
# it; weights_verify (the sidecar's rule) re-hashes it once against that record.
rule weights_random:
    localrule: True
    output:
        f"{WEIGHTS_DIR}/{{filename}}",
    log:
        f"{WEIGHTS_DIR}/logs/{{filename}}.random.log",
    wildcard_constraints:
        filename="|".join(WEIGHTS[n].filename.replace(".", r"\.") for n in random_model_names()),
    params:
        name=lambda w: WEIGHT_BY_FILE[w.filename],
        seed=RANDOM_SEED,
    run:
        make_random_job(params.name, output[0], params.seed, log[0])
