rule train:
    """Train the model (model.name) on the training cubes; resumes from train/ckpt/<run>/last.pt after a kill."""
    input:
        "results/{dataset}/stc/train.h5",
    output:
        model="results/{dataset}/train/model.pt",
        log="results/{dataset}/train/loss.csv",
        plot=report("results/{dataset}/train/loss.png", caption="../report/loss.rst", category="Training"),
    params:
        cfg=params_json(*C.TRAIN_SECTIONS),
    threads: 8  # a local default (capped by --cores); profiles set threads, memory, GPUs and time
    log:
        "results/logs/{dataset}/train.log",
    benchmark:
        "results/benchmarks/{dataset}/train/train.tsv"
    conda:
        f"{ENVS}/torch.yaml"
    shell:
        "OMP_NUM_THREADS={threads} {VAD} train --params {params.cfg:q} --stc {input:q} --out {output.model:q} "
        "--log {output.log:q} --plot {output.plot:q} --threads {threads} 2> {log:q}"
