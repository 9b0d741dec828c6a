# Input functions and params shared by the rules (functions only: rules live in the other .smk files).
# Each is a pure lookup into PLAN, the parse-time plan built in the Snakefile.


def current_key(stage):
    """Input-function guard: refuse to (re)build a store entry that is not the current config's."""

    def check(w):
        PLAN.check_key(w.dataset, stage, w.key)
        return []

    return check


def upstream_of(stage):
    """Products of the stage's upstream entries (never aliases), plus the weights it loads and their
    verification sidecar (both ancient: the key pins the digest; the job checks the sidecar still fits)."""

    def inputs(w):
        PLAN.check_key(w.dataset, stage, w.key)
        found = {u: PLAN.product(w.dataset, u) for u in STAGES[stage].upstream}
        if STAGES[stage].weights:
            (role,) = STAGES[stage].weights
            weights = PLAN.weight_file(w.dataset, role)
            found["weights"] = ancient(weights)
            found["weights_verified"] = ancient(weights + SIDECAR_SUFFIX)
        return found

    return inputs


def spec_of(stage):
    return lambda w: PLAN.get(w.dataset).specs[stage]


def weights_name(role):
    return lambda w: PLAN.get(w.dataset).settings["models"][role]


def shards_of(stage):
    def inputs(w):
        PLAN.check_key(w.dataset, stage, w.key)
        return PLAN.shard_paths(w.dataset, stage, w.key)

    return inputs


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
