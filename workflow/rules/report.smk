# fmwsss's HTML report of a dataset (a local rule: it reads the store, moves no stage key). Snakemake
# removes a directory output before the job runs; the thumbnail cache lives in results/{dataset}/.report-cache
# so the rebuild still draws only what changed.


rule report:
    localrule: True
    input:
        report_inputs,
    output:
        report(
            directory("results/{dataset}/report"),
            caption="../report/report.rst",
            htmlindex="index.html",
            category="HTML report",
            labels={"dataset": "{dataset}"},
        ),
    log:
        "results/{dataset}/logs/report.log",
    run:
        report_job(PLAN, wildcards.dataset, output[0], log[0])
