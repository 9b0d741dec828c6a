# Input functions and params shared by the rules (functions only: rules live in the other .smk files).
# Each is a pure lookup into PLAN, the parse-time plan built in the Snakefile.


def upstream_of(stage):
    """Products of the stage's upstream entries (never aliases), plus the weights it loads and their
    verification sidecar (both ancient: the key pins the digest; the job checks the sidecar still fits).

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
        if STAGES[stage].weights:
            (role,) = STAGES[stage].weights
            weights = PLAN.weight_file(w.dataset, role)
            found["weights"] = ancient(weights)
            found["weights_verified"] = ancient(weights + SIDECAR_SUFFIX)
        return found

    return inputs


def spec_of(stage):
    """The entry's hashed spec (a finished entry of another shard layout keeps its own)."""
    return lambda w: PLAN.entry(w.dataset, stage, w.key).spec


def weights_name(role):
    return lambda w: PLAN.get(w.dataset).settings["models"][role]


def shards_of(stage):
    return lambda w: PLAN.shard_paths(w.dataset, stage, w.key)


def partial_of(stage):
    return lambda w: PLAN.partial(w.dataset, stage, w.key)


def alias_inputs(w):
    upstream = [f"results/{w.dataset}/{a}" for a in upstream_aliases(w.alias)]
    return [PLAN.product(w.dataset, ALIASES[w.alias])] + upstream


def alias_target(w):
    return PLAN.alias_target(w.dataset, w.alias)


def report_inputs(w):
    """The report rule reads every stage's current product (so it runs after the whole pipeline)."""
    return [PLAN.product(w.dataset, stage) for stage in STAGES]
