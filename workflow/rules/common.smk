# Input functions and params shared by the rules (functions only: rules live in the other .smk files).
# Each is a pure lookup into PLAN, the parse-time plan built in the Snakefile.
# A complete store entry that a job reads (or a finalize re-checks) must still match its spec.json's file
# record by size: otherwise DAG building stops naming the damaged files and `fmwsss repair DATASET`.
# Snakemake ignores an input function's error when the file that job would make exists already, so the
# check that stops a run sits in the input functions of the jobs a user targets (an alias, the report):
# they check their stage's entry and every entry upstream of it.

from fmwsss.pipeline.integrity import require_entries_intact


def upstream_of(stage):
    """Products of the stage's upstream entries (never aliases), plus the weights it loads and their
    verification sidecar (both ancient: the key pins the digest; the job checks the sidecar still fits);
    for the segmenter training, the registry backbone of a Mask2Former arch the same way.

    A sharded stage reads the upstream entries of its own shard layout; a whole-set stage (prompt or
    DeepLab training) reads a sharded upstream through its set link (fmwsss.pipeline.plan.Plan.set_product),
    so a new shard size does not move its inputs.
    """

    def inputs(w):
        entry = PLAN.entry(w.dataset, stage, w.key)
        found = {}
        for u in STAGES[stage].upstream:
            if STAGES[u].sharded and not STAGES[stage].sharded:
                found[u] = PLAN.set_product(w.dataset, u)
            else:
                found[u] = PLAN.product(w.dataset, u, entry.upstream[u])
        require_entries_intact(os.path.dirname(p) for p in found.values())
        if STAGES[stage].weights:
            (role,) = STAGES[stage].weights
            weights = PLAN.weight_file(w.dataset, role)
            found["weights"] = ancient(weights)
            found["weights_verified"] = ancient(weights + SIDECAR_SUFFIX)
        backbone = PLAN.backbone_file(w.dataset) if stage == "deeplab_train" else None
        if backbone:
            found["backbone"] = ancient(backbone)
            found["backbone_verified"] = ancient(backbone + SIDECAR_SUFFIX)
        return found

    return inputs


def spec_of(stage):
    """The entry's hashed spec (a finished entry of another shard layout keeps its own)."""
    return lambda w: PLAN.entry(w.dataset, stage, w.key).spec


def weights_name(role):
    return lambda w: PLAN.get(w.dataset).settings["models"][role]


def shards_of(stage):
    def inputs(w):
        shards = PLAN.shard_paths(w.dataset, stage, w.key)
        require_entries_intact([PLAN.store(w.dataset, stage, w.key)], names=[os.path.basename(s) for s in shards])
        return shards

    return inputs


def partial_of(stage):
    return lambda w: PLAN.partial(w.dataset, stage, w.key)


def score_inputs(w):
    """The scored entry's product (its key is hashed into the score key, so checking the score key suffices)."""
    PLAN.check_score_key(w.dataset, w.scored, w.key)
    return PLAN.product(w.dataset, w.scored)


def score_spec(w):
    return PLAN.get(w.dataset).score_specs[w.scored]


def require_chain_intact(dataset, stages):
    """Every complete entry of ``stages`` and of the stages upstream of them matches its record by size."""
    todo, seen = list(stages), set()
    while todo:
        stage = todo.pop()
        if stage not in seen:
            seen.add(stage)
            todo.extend(STAGES[stage].upstream)
    require_entries_intact(PLAN.store(dataset, stage) for stage in STAGES if stage in seen)


def alias_inputs(w):
    """The entry's product, its current score where the stage is scored, and the upstream aliases."""
    stage = ALIASES[w.alias]
    require_chain_intact(w.dataset, [stage])
    upstream = [f"results/{w.dataset}/{a}" for a in upstream_aliases(w.alias)]
    scores = [PLAN.score_product(w.dataset, stage)] if stage in SCORES else []
    return [PLAN.product(w.dataset, stage)] + scores + upstream


def alias_target(w):
    return PLAN.alias_target(w.dataset, w.alias)


def alias_scores(w):
    """The score entry the aliased entry's metrics links point at ('' for an unscored stage): a param, so a new
    score key (eval changed, a mask corrected) re-points the links through the params rerun trigger."""
    stage = ALIASES[w.alias]
    return PLAN.score_link(w.dataset, stage) if stage in SCORES else ""


def report_inputs(w):
    """The report rule reads every stage's current product and score (so it runs after the whole pipeline)."""
    require_chain_intact(w.dataset, list(STAGES))
    return [PLAN.product(w.dataset, stage) for stage in STAGES] + [PLAN.score_product(w.dataset, s) for s in SCORES]
