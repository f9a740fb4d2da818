rule stc:
    """Spatio-temporal cubes of every detected object of a split, streamed into one HDF5 file."""
    input:
        unpack(dataset_input),
        boxes=per_video("results/{dataset}/detect/{split}/{video}.csv"),
        flows=per_video("results/{dataset}/flow/{split}/{video}.h5"),
    output:
        "results/{dataset}/stc/{split}.h5",
    params:
        root=root_param,
        cfg=params_json("stc", "demo"),
        videos=videos_param(),
    log:
        "results/logs/{dataset}/stc/{split}.log",
    benchmark:
        "results/benchmarks/{dataset}/stc/{split}.tsv"
    conda:
        f"{ENVS}/vision.yaml"
    shell:
        "{VAD} stc --params {params.cfg:q} --root @{params.root:q} --split {wildcards.split:q} "
        "--boxes {input.boxes:q} --flows {input.flows:q} --out {output:q} 2> {log:q}"
