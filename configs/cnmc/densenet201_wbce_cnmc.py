# Class-weighted BCE, W_i = N / (2 n_i) counted on the training set by ClassWeightHook;
# otherwise as densenet201_fhl_cnmc.py, except that the training set is not oversampled:
# the class weights do the balancing (ClassWeightHook does not see a sampler's oversampling,
# so keeping ClassBalancedOverSampler would correct the imbalance twice).
_base_ = './densenet201_fhl_cnmc.py'

model = dict(head=dict(loss=dict(_delete_=True, type='WeightedBCELoss', class_weight='auto')))
custom_hooks = [dict(type='LatencyHook', warmup=5), dict(type='ClassWeightHook')]
train_dataloader = dict(sampler=dict(_delete_=True, type='DefaultSampler', shuffle=True))
