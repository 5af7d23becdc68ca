# The Focal Hinge Loss study, Table 2, DenseNet201 / Weighted Binary Cross-entropy: the paper's
# W_i = N / (c n_i) with c = 2 classes, counted on its 20,050 training images (10,778 hem /
# 9,272 all, the class counts the sampler reproduces): hem 0.930, all 1.081. Otherwise as
# densenet201_fhl_table2_cnmc.py.
_base_ = './densenet201_fhl_table2_cnmc.py'

model = dict(
    head=dict(
        loss=dict(_delete_=True, type='WeightedBCELoss',
                  class_weight=[20050 / (2 * 10778), 20050 / (2 * 9272)])))
