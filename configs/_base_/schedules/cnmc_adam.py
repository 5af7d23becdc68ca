# Optimiser of the C-NMC loss study: Adam, lr 1e-5, betas (0.7, 0.999), batch 32, constant lr.
optim_wrapper = dict(
    optimizer=dict(type='Adam', lr=1e-5, betas=(0.7, 0.999), weight_decay=0.0))
param_scheduler = []  # constant learning rate

train_cfg = dict(by_epoch=True, max_epochs=30, val_interval=1)
val_cfg = dict()
test_cfg = dict()

# lr was tuned for one GPU x 32 images; `tools/train.py --auto-scale-lr` rescales it
auto_scale_lr = dict(base_batch_size=32)
