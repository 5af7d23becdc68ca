# The Focal Hinge Loss study, Table 2, DenseNet201 / Binary Cross-entropy (WeightedBCELoss without
# class weights); otherwise as densenet201_fhl_table2_cnmc.py.
_base_ = './densenet201_fhl_table2_cnmc.py'

model = dict(head=dict(loss=dict(_delete_=True, type='WeightedBCELoss', class_weight=None)))
