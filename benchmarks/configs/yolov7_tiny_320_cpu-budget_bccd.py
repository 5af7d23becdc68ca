# YOLOv7-tiny from scratch on a 2-core CPU machine for a wall-clock budget, at the size and batch
# of the CPU YOLOv8n record (320 px, batch 8: benchmarks/cpu_inference.md), on BCCD's ImageSets
# split (train 205 / val 87 / test 72):
#   python benchmarks/bccd_budget.py benchmarks/configs/yolov7_tiny_320_cpu-budget_bccd.py \
#       --budget 420 --data-root data/bccd
# The recipe of configs/yolov7/yolov7_tiny_640_300e_bccd.py (its header: the reference file of
# each setting) scaled to the budget:
#   - 320x320 mosaics (the reference's --img 320: the objectness gain scales by (320 / 640)^2),
#     tests at 320x240;
#   - batch 8 with the reference's weight decay for it (5e-4 x 8 / 64: it scales the decay with
#     the batch against its nominal 64; lr 0.01 stays, the loss being summed over the images);
#   - the lr on the wall clock (TimeBudgetHook): a linear warm-up over 78 iterations (3 epochs
#     of 205 images at batch 8, the reference's warmup_epochs), then a cosine to lr0 * lrf
#     (lrf 0.01) at the end of the budget; no momentum warm-up (the hook sets the lr only);
#   - one loader worker, one validation at the end (bccd_budget.py), EMA as the config.
_base_ = ['../../configs/yolov7/yolov7_tiny_640_300e_bccd.py']

S = 320
budget_s = 420
model = dict(bbox_head=dict(img_scale=S))
train_pipeline = [
    dict(t, img_scale=(S, S)) if t['type'] in ('CachedMosaic', 'FastCachedMixUp') else
    dict(t, border=(-S // 2, -S // 2)) if t['type'] == 'YOLOv7RandomAffine' else t
    for t in _base_.train_pipeline
]
test_pipeline = [dict(t, scale=(S, S)) if t['type'] == 'Resize' else t
                 for t in _base_.test_pipeline]
train_dataloader = dict(batch_size=8, num_workers=1, persistent_workers=True, pin_memory=False,
                        dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(num_workers=1, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

max_epochs = 1000  # an upper bound: TimeBudgetHook ends training when the budget is spent
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = []  # TimeBudgetHook owns the lr
optim_wrapper = dict(optimizer=dict(weight_decay=5e-4 * 8 / 64))
default_hooks = dict(logger=dict(interval=10))
custom_hooks = [
    dict(type='LatencyHook', warmup=5),
    dict(type='TimeBudgetHook', budget_s=budget_s, lr_schedule='cosine', warmup_iters=78,
         min_lr_ratio=0.01),
    dict(type='EMAHook', ema_type='ForeachExpMomentumEMA', momentum=0.0001, gamma=2000,
         update_buffers=True, priority=49),
    dict(type='CountCalibrationHook'),
]
env_cfg = dict(cudnn_benchmark=False)
