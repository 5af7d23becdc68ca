# The Focal Hinge Loss study, Table 2, Ensemble DenseNet201 and EfficientNetB2: the mean of the
# probabilities of `all` of the two Focal Hinge Loss models (the paper does not give the
# rule), threshold 0.5, on the final test set. Test only; `mmbloodcell reproduce fhl-table2`
# trains the members and passes their checkpoints. By hand:
#
#   python tools/train.py configs/fhl_study/densenet201_fhl_table2_cnmc.py
#   python tools/train.py configs/fhl_study/efficientnet-b2_fhl_table2_cnmc.py
#   python tools/test.py configs/fhl_study/ensemble_densenet201-efficientnet-b2_fhl_table2_cnmc.py \
#       work_dirs/densenet201_fhl_table2_cnmc/best_binary_weighted_f1_epoch_N.pth \
#       --cfg-options \
#       model.members.0.checkpoint=work_dirs/densenet201_fhl_table2_cnmc/best_binary_weighted_f1_epoch_N.pth \
#       model.members.1.checkpoint=work_dirs/efficientnet-b2_fhl_table2_cnmc/best_binary_weighted_f1_epoch_M.pth
#
# tools/test.py's CHECKPOINT may be one of the member checkpoints (it is recognised and
# changes nothing) or an ensemble checkpoint (keys members.<i>.*), see EnsembleClassifier.
# Both members see the images of this config's test pipeline (224x224, both were trained on
# it); each applies its own data_preprocessor (normalisation).
_base_ = [
    '../_base_/datasets/cnmc_fhl-protocol.py',
    '../_base_/cls_runtime.py',
]

densenet_config = '{{fileDirname}}/densenet201_fhl_table2_cnmc.py'
efficientnet_config = '{{fileDirname}}/efficientnet-b2_fhl_table2_cnmc.py'

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
