# vad-pipeline: object-centric video anomaly detection, one rule per stage.
#   snakemake --cores 2 results/demo/auc.json        (synthetic demo, no download)
#   snakemake --cores 8 results/ped2/auc.json        (set datasets.ped2.root in config.yaml)
#   snakemake --cores 8 results/ped2/ablation.csv    (every variant of config.yaml's ablation:)
from snakemake.utils import min_version

min_version("8.0")


configfile: "config.yaml"


# HTML report: snakemake --report results/<d>/report.html results/<d>/auc.json (README, "Report")
report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/detect.smk"
include: "workflow/rules/flow.smk"
include: "workflow/rules/stc.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/score.smk"
include: "workflow/rules/validation.smk"
include: "workflow/rules/apply.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/ablation.smk"


rule all:
    input:
        "results/demo/auc.json",
