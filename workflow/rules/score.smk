rule infer:
    """Raw per-object terms of a split: feature inconsistency S_f and prediction error S_p."""
    input:
        model="results/{dataset}/train/model.pt",
        stc="results/{dataset}/stc/{split}.h5",
    output:
        "results/{dataset}/infer/{split}.csv",
    params:
        cfg=params_json("device", extra=lambda c: {"score": {"batch_size": c["score"]["batch_size"]}}),
    threads: 8  # a local default (capped by --cores); profiles set threads, memory, GPUs and time
    log:
        "results/logs/{dataset}/infer/{split}.log",
    benchmark:
        "results/benchmarks/{dataset}/infer/{split}.tsv"
    conda:
        f"{ENVS}/torch.yaml"
    shell:
        "OMP_NUM_THREADS={threads} {VAD} infer --params {params.cfg:q} --model {input.model:q} "
        "--stc {input.stc:q} --out {output:q} 2> {log:q}"


rule score:
    """Per-object scores: terms z-scored with training statistics, fused with score.w_f / w_p."""
    input:
        train="results/{dataset}/infer/train.csv",
        test="results/{dataset}/infer/test.csv",
    output:
        scores="results/{dataset}/object_scores.csv",
        stats="results/{dataset}/score_stats.json",
    params:
        cfg=params_json("score"),
    log:
        "results/logs/{dataset}/score.log",
    benchmark:
        "results/benchmarks/{dataset}/score/score.tsv"
    conda:
        f"{ENVS}/eval.yaml"
    shell:
        "{VAD} score --params {params.cfg:q} --train {input.train:q} --test {input.test:q} "
        "--out {output.scores:q} --stats {output.stats:q} 2> {log:q}"
