# Runtime shared by the BCCD detection configs (mmdet scope).
default_scope = 'mmdet'
custom_imports = dict(imports=['mmbloodcell'], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='MainProcessLoggerHook', interval=20),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=5, max_keep_ckpts=3,
                    save_best='coco/bbox_mAP', rule='greater',
                    # write to a temporary file, then rename: never a half-written .pth
                    backend_args=dict(backend='atomic_local')),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='DetVisualizationHook'),
    # stop with the iteration and lr when the loss turns NaN/inf (before a checkpoint is written)
    non_finite_loss=dict(type='NonFiniteLossHook'),
    # --resume continues exactly: random-generator state in checkpoints, mid-epoch restart
    exact_resume=dict(type='ExactResumeHook'),
    # <timestamp>/report/: report.html, loss / lr / metric curves, PR curves, sample grid and
    # the predictions of the test (or last validation) loop; off: default_hooks.report=None
    report=dict(type='ReportHook', num_samples=6))
# ms per image (batch 1, after warm-up) next to the COCO metrics of every val / test run
# count thresholds per class calibrated on val (count_thresholds.json, checkpoint meta) and
# used by the test run's CellCountMetric and by `mmbloodcell detect`
custom_hooks = [dict(type='LatencyHook', warmup=5), dict(type='CountCalibrationHook')]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))  # tools/train.py switches to gloo on CPU-only machines

vis_backends = [dict(type='LocalVisBackend')]
# no name: the Runner names it after the run (a fixed name would hand a later run in the same
# process the first run's visualizer, which writes into that run's folder)
visualizer = dict(type='DetLocalVisualizer', vis_backends=vis_backends)
log_processor = dict(type='LogProcessor', window_size=20, by_epoch=True)

log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0)
