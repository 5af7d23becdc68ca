# Runtime shared by the C-NMC classification configs (mmpretrain scope).
default_scope = 'mmpretrain'
custom_imports = dict(imports=['mmbloodcell'], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='MainProcessLoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # keep the best epoch by the challenge's score (weighted F1 of BinaryClassificationMetric)
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2,
                    save_best='binary/weighted_f1', rule='greater',
                    # write to a temporary file, then rename: never a half-written .pth
                    backend_args=dict(backend='atomic_local')),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='VisualizationHook', enable=False),
    # stop with the iteration and lr when the loss turns NaN/inf (before a checkpoint is written)
    non_finite_loss=dict(type='NonFiniteLossHook'),
    # --resume continues exactly: random-generator state in checkpoints, mid-epoch restart
    exact_resume=dict(type='ExactResumeHook'),
    # <timestamp>/report/: report.html, loss / lr / metric curves, ROC, confusion matrix, cells and
    # the predictions of the test (or last validation) loop; off: default_hooks.report=None
    report=dict(type='ReportHook', num_samples=6))
# ms per image (after warm-up) next to the metrics of every val / test run
custom_hooks = [dict(type='LatencyHook', warmup=5)]

env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))  # tools/train.py switches to gloo on CPU-only machines

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)
log_processor = dict(type='LogProcessor', window_size=20, by_epoch=True)

log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
