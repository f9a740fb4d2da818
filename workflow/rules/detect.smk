rule detect:
    """Object boxes of one video (backend from detect.backend)."""
    input:
        unpack(dataset_input),
        weights=weights_input("detect"),
    output:
        "results/{dataset}/detect/{split}/{video}.csv",
    params:
        root=root_param,
        cfg=params_json("detect", "demo"),
        video=videos_param(),
    log:
        "results/logs/{dataset}/detect/{split}/{video}.log",
    benchmark:
        "results/benchmarks/{dataset}/detect/{split}/{video}.tsv"
    resources:
        gpu=gpu_request("detect"),
    group:
        "per_video"  # cluster only: --group-components per_video=N bundles N such jobs per submission
    conda:
        detect_env
    shell:
        "{VAD} detect --params {params.cfg:q} --root @{params.root:q} --split {wildcards.split:q} "
        "--video {wildcards.video:q} --out {output:q} 2> {log:q}"
