# Plain binary cross entropy (WeightedBCELoss without class weights);
# otherwise as efficientnet-b2_fhl_cnmc.py.
_base_ = './efficientnet-b2_fhl_cnmc.py'

model = dict(head=dict(loss=dict(_delete_=True, type='WeightedBCELoss', class_weight=None)))
