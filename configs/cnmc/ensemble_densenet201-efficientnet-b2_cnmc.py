# Ensemble of the DenseNet-201 and EfficientNet-B2 models trained with the Focal Hinge Loss: the
# mean of their probabilities of `all` (the study's ensemble, 5th on the C-NMC 2019 final test).
# Test only. Train the members first, then give their checkpoints:
#
#   python tools/train.py configs/cnmc/densenet201_fhl_cnmc.py
#   python tools/train.py configs/cnmc/efficientnet-b2_fhl_cnmc.py
#   python tools/test.py configs/cnmc/ensemble_densenet201-efficientnet-b2_cnmc.py \
#       work_dirs/densenet201_fhl_cnmc/best_binary_weighted_f1_epoch_N.pth \
#       --cfg-options \
#       model.members.0.checkpoint=work_dirs/densenet201_fhl_cnmc/best_binary_weighted_f1_epoch_N.pth \
#       model.members.1.checkpoint=work_dirs/efficientnet-b2_fhl_cnmc/best_binary_weighted_f1_epoch_M.pth
#
# tools/test.py's CHECKPOINT may be one of the member checkpoints (it is recognised and
# changes nothing) or an ensemble checkpoint (keys members.<i>.*), see EnsembleClassifier.
# Both members see the images of this config's test pipeline (224x224, both were trained on
# it); each applies its own data_preprocessor (normalisation). Members trained at another
# size take `input_size=(h, w)`.
_base_ = [
    '../_base_/datasets/cnmc.py',
    '../_base_/cls_runtime.py',
]

densenet_config = '{{fileDirname}}/densenet201_fhl_cnmc.py'
efficientnet_config = '{{fileDirname}}/efficientnet-b2_fhl_cnmc.py'

model = dict(
    type='EnsembleClassifier',
    members=[
        dict(config=densenet_config, checkpoint=None, weight=1.0),
        dict(config=efficientnet_config, checkpoint=None, weight=1.0),
    ],
    threshold=0.5)

# evaluation only
train_dataloader = None
val_dataloader = None
val_evaluator = None
test_cfg = dict()
