# Input functions and params shared by the rules (functions only: rules live in the other .smk files).
# Each is a pure lookup into PLAN, the parse-time plan built in the Snakefile.
# A complete store entry that a job reads (or a finalize re-checks) must still match its spec.json's file
# record by size: otherwise DAG building stops naming the damaged files and `fmwsss repair DATASET`.
# Snakemake ignores an input function's error when the file that job would make exists already, so the
# check that stops a run sits in the input functions of the jobs a user targets (an alias, the report):
# they check their stage's entry and every entry upstream of it.

from fmwsss.pipeline.integrity import require_entries_intact


def current_key(stage):
    """Input-function guard: refuse to (re)build a store entry that is not the current config's."""

    def check(w):
        PLAN.check_key(w.dataset, stage, w.key)
        return []

    return check


def upstream_of(stage):
    """Products of the stage's upstream entries (never aliases), plus the weights it loads."""

    def inputs(w):
        PLAN.check_key(w.dataset, stage, w.key)
        found = {u: PLAN.product(w.dataset, u) for u in STAGES[stage].upstream}
        require_entries_intact(os.path.dirname(p) for p in found.values())
        if STAGES[stage].weights:
            (role,) = STAGES[stage].weights
            found["weights"] = PLAN.weight_file(w.dataset, role)
        return found

    return inputs


def spec_of(stage):
    return lambda w: PLAN.get(w.dataset).specs[stage]


def weights_name(role):
    return lambda w: PLAN.get(w.dataset).settings["models"][role]


def shards_of(stage):
    def inputs(w):
        PLAN.check_key(w.dataset, stage, w.key)
        shards = PLAN.shard_paths(w.dataset, stage, w.key)
        require_entries_intact([PLAN.store(w.dataset, stage, w.key)], names=[os.path.basename(s) for s in shards])
        return shards

    return inputs


def partial_of(stage):
    return lambda w: PLAN.partial(w.dataset, stage, w.key)


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
    require_chain_intact(w.dataset, [ALIASES[w.alias]])
    upstream = [f"results/{w.dataset}/{a}" for a in upstream_aliases(w.alias)]
    return [PLAN.product(w.dataset, ALIASES[w.alias])] + upstream


def alias_target(w):
    return PLAN.alias_target(w.dataset, w.alias)


def report_inputs(w):
    """The report rule reads every stage's current product (so it runs after the whole pipeline)."""
    require_chain_intact(w.dataset, list(STAGES))
    return [PLAN.product(w.dataset, stage) for stage in STAGES]
