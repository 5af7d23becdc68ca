# Plain binary cross entropy (WeightedBCELoss without class weights);
# otherwise as densenet201_fhl_cnmc.py.
_base_ = './densenet201_fhl_cnmc.py'

model = dict(head=dict(loss=dict(_delete_=True, type='WeightedBCELoss', class_weight=None)))
