# The Focal Hinge Loss study, Table 2, EfficientNetB2 / Binary Cross-entropy (WeightedBCELoss without
# class weights); otherwise as efficientnet-b2_fhl_table2_cnmc.py.
_base_ = './efficientnet-b2_fhl_table2_cnmc.py'

model = dict(head=dict(loss=dict(_delete_=True, type='WeightedBCELoss', class_weight=None)))
