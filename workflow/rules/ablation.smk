# Ablations (config.yaml `ablation:`): every variant is trained, inferred, scored and evaluated by
# the main pipeline's rules, reused with `use rule ... with:` for the paths under
# results/{dataset}/ablation/{variant}/. Their params come from the variant's settings (params_json
# in common.smk resolves them through job_config), so each variant is cached and reruns on its own;
# detection, flow, STCs and labels are the dataset's, shared with the main pipeline. A variant
# whose training settings coincide with an earlier one's on a dataset is inferred with that one's
# model instead of training its own (A.trained_by; trained_by and variant_model in common.smk).
import re

ABLATION = config.get("ablation", {})
ABL = A.variant_dir("results", "{dataset}", "{variant}")


wildcard_constraints:
    variant="|".join(map(re.escape, ABLATION)) or "(?!)",


use rule train as ablation_train with:
    output:
        model=f"{ABL}/train/model.pt",
        log=f"{ABL}/train/loss.csv",
        plot=f"{ABL}/train/loss.png",
    log:
        "results/logs/{dataset}/ablation/{variant}/train.log",
    benchmark:
        "results/benchmarks/{dataset}/ablation/{variant}/train.tsv"


use rule infer as ablation_infer with:
    input:
        model=variant_model,
        stc="results/{dataset}/stc/{split}.h5",
    output:
        f"{ABL}/infer/{{split}}.csv",
    log:
        "results/logs/{dataset}/ablation/{variant}/infer/{split}.log",
    benchmark:
        "results/benchmarks/{dataset}/ablation/{variant}/infer/{split}.tsv"


use rule score as ablation_score with:
    input:
        train=f"{ABL}/infer/train.csv",
        test=f"{ABL}/infer/test.csv",
        motion_train="results/{dataset}/motion/train.csv",
        motion_test="results/{dataset}/motion/test.csv",
        cameras=["results/{dataset}/cameras/train.csv", "results/{dataset}/cameras/test.csv"],
    output:
        scores=f"{ABL}/object_scores.csv",
        stats=f"{ABL}/score_stats.json",
    log:
        "results/logs/{dataset}/ablation/{variant}/score.log",
    benchmark:
        "results/benchmarks/{dataset}/ablation/{variant}/score.tsv"


use rule frame_scores as ablation_frame_scores with:
    input:
        objects=f"{ABL}/object_scores.csv",
        labels="results/{dataset}/labels.csv",
        cells_train="results/{dataset}/cells/train.csv",
        cells_test="results/{dataset}/cells/test.csv",
        cameras=["results/{dataset}/cameras/train.csv", "results/{dataset}/cameras/test.csv"],
    output:
        f"{ABL}/frame_scores.csv",
    log:
        "results/logs/{dataset}/ablation/{variant}/frame_scores.log",


use rule evaluate as ablation_evaluate with:
    input:
        frames=f"{ABL}/frame_scores.csv",
        summary="results/{dataset}/gt_summary.json",
    output:
        auc=f"{ABL}/auc.json",
        roc=f"{ABL}/roc.png",
        curves=f"{ABL}/scores.png",
        table=f"{ABL}/summary.html",
    log:
        "results/logs/{dataset}/ablation/{variant}/evaluate.log",


rule ablation:
    """Every variant's AUCs beside the paper's (ablation.csv, in %) and as bars (ablation.png)."""
    input:
        expand(f"{ABL}/auc.json", variant=ABLATION, allow_missing=True),
    output:
        csv=report("results/{dataset}/ablation.csv", caption="../report/ablation.rst", category="Ablation"),
        plot=report("results/{dataset}/ablation.png", caption="../report/ablation.rst", category="Ablation"),
        table=report("results/{dataset}/ablation.html", caption="../report/ablation.rst", category="Ablation"),
    params:
        cfg=lambda w: json.dumps(A.spec(config, w.dataset)),  # variants in config order, like the input
    log:
        "results/logs/{dataset}/ablation.log",
    conda:
        f"{ENVS}/eval.yaml"
    shell:
        "{VAD} ablation --params {params.cfg:q} --aucs {input:q} --out {output.csv:q} --plot {output.plot:q} "
        "--table {output.table:q} > /dev/null 2> {log:q}"
