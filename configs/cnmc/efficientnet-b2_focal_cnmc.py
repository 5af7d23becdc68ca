# Binary focal loss (Lin et al. 2017), gamma 2, alpha 0.25;
# otherwise as efficientnet-b2_fhl_cnmc.py.
_base_ = './efficientnet-b2_fhl_cnmc.py'

model = dict(head=dict(loss=dict(_delete_=True, type='BinaryFocalLoss', gamma=2.0, alpha=0.25)))
