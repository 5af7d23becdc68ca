# The Focal Hinge Loss study, Table 2, EfficientNetB2 / Focal Loss: binary focal loss, gamma 2 and
# alpha (the paper's beta) 0.25 (the paper gives neither: Lin et al.'s values). Otherwise as
# efficientnet-b2_fhl_table2_cnmc.py.
_base_ = './efficientnet-b2_fhl_table2_cnmc.py'

model = dict(head=dict(loss=dict(_delete_=True, type='BinaryFocalLoss', gamma=2.0, alpha=0.25)))
