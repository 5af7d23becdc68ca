# The Focal Hinge Loss study, Table 2, EfficientNetB2 / Hinge Loss: max(0, 1 - y y_pred) with
# y in {-1, 1} and y_pred the sigmoid output (the paper's model ends in a sigmoid:
# HingeLoss score='prob'); otherwise as efficientnet-b2_fhl_table2_cnmc.py.
_base_ = './efficientnet-b2_fhl_table2_cnmc.py'

model = dict(head=dict(loss=dict(_delete_=True, type='HingeLoss')))
