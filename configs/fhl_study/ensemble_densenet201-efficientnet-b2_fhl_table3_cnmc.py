# The Focal Hinge Loss study, Table 3, the proposed method on the validation set: the ensemble of
# ensemble_densenet201-efficientnet-b2_fhl_table2_cnmc.py tested on the labelled preliminary
# test set (the study's validation set) instead of the final one.
_base_ = './ensemble_densenet201-efficientnet-b2_fhl_table2_cnmc.py'

test_dataloader = dict(
    dataset=dict(_delete_=True,
                 type={{_base_.dataset_type}},
                 check_images=True,
                 max_image_size={{_base_.max_image_size}},
                 data_root={{_base_.data_root}},
                 split='prelim_test',
                 test_mode=True,
                 pipeline={{_base_.test_pipeline}}))
test_evaluator = dict(type='BinaryClassificationMetric')
