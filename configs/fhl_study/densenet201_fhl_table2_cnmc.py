# The Focal Hinge Loss study, Table 2, DenseNet201 / Focal Hinge Loss: DenseNet-201 + the
# study's head (GAP -> FC 256 -> ReLU -> FC 1) on its protocol (cnmc_fhl-protocol.py: all
# training folds, prelim set for validation, final set for the test, offline-equivalent
# balancing, training-set mean / std). The base of the densenet201_<loss>_table2 configs.
_base_ = [
    '../_base_/datasets/cnmc_fhl-protocol.py',
    '../_base_/schedules/cnmc_adam.py',
    '../_base_/cls_runtime.py',
    '../_base_/models/binary_cls.py',
]

model = dict(
    data_preprocessor=dict(_delete_=True, type='StatsFileClsDataPreprocessor',
                           stats_file={{_base_.train_stats}}, to_rgb=True),
    backbone=dict(
        type='DenseNet',
        arch='201',
        # ImageNet-1k weights of the mmpretrain model zoo (torchvision's, converted)
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.openmmlab.com/mmclassification/v0/densenet/'
            'densenet201_4xb256_in1k_20220426-05cae4ef.pth',
            prefix='backbone')),
    head=dict(in_channels=1920))
