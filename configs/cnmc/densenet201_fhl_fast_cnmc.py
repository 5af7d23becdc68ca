# densenet201_fhl_cnmc.py trained on the fast GPU path: the same model, loss, optimiser
# and schedule (checkpoints are interchangeable), with the training step captured as one CUDA
# graph, channels-last weights and bfloat16 autocast (no loss scaler). See
# FastImageClassifier; benchmarks/cnmc_throughput.py measures it against the stock step and
# trains both side by side (--equivalence).
#   model.autocast_dtype=None  -> float32 (TF32) CUDA graph, the closest to the stock numbers
#   model.cuda_graph=False     -> eager steps (needed with --amp, clip_grad or multi-GPU)
# On a CPU the graph is not used (eager steps).
_base_ = './densenet201_fhl_cnmc.py'

model = dict(
    type='FastImageClassifier',
    channels_last=True,
    autocast_dtype='bfloat16',
    cuda_graph=True,
    graph_warmup_iters=3)
