# C-NMC 2019 as the Focal Hinge Loss study uses it (docs/paper_protocols.md): train on every
# patient of the three training folds, validate on the preliminary test set, test on the final
# test set. The patient-wise protocol of cnmc.py is one line away: inherit
# '../_base_/datasets/cnmc.py' instead of this file (its test split is then the prelim set).
#
# Final test set: scored when its labels are at
#   <data_root>/testing_data/C-NMC_test_final_phase_data_labels.csv  (Patient_ID,new_names,labels)
# otherwise unlabelled: tools/test.py writes the challenge's submission file isbi_valid.predict
# (one line per image 1.bmp, 2.bmp, ...: 1 all, 0 hem) and submission.zip beside the metrics.
#
# Normalisation with the training set's mean / std (not ImageNet's), read from the file that
#   python tools/analysis/cnmc_mean_std.py data/C-NMC_Leukemia
# writes (<data_root>/mean_std.json); the configs' data_preprocessor names it.
_base_ = './cnmc.py'

train_stats = {{_base_.mean_std_file}}
meta_keys = {{_base_.meta_keys}}
img_size = {{_base_.img_size}}

# The study augmented offline (CLAHE, horizontal / vertical flips, random rotation); here each
# operation is drawn independently per sample with probability 0.5 (the paper gives no
# probabilities or parameters).
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomRotate', angle=180, prob=0.5, expand=True),
    dict(type='CropToCell', margin=2),
    dict(type='RandomApply', transforms=[dict(type='CLAHE', clip_limit=2.0)], prob=0.5),
    dict(type='Resize', scale=(img_size, img_size)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomFlip', prob=0.5, direction='vertical'),
    dict(type='PackInputs', meta_keys=meta_keys),
]
test_pipeline = {{_base_.test_pipeline}}  # the cells as they are: crop and resize only

train_dataloader = dict(
    # the online equivalent of the offline balancing to 20,050 images (10,778 hem / 9,272
    # all): every hem cell drawn 10,778 / 3,389 times per epoch, every all cell 9,272 / 7,272
    sampler=dict(_delete_=True, type='ClassBalancedOverSampler', shuffle=True,
                 repeat_factors=dict(hem=10778 / 3389, all=9272 / 7272)),
    dataset=dict(folds=(0, 1, 2), patient_split=None, pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(_delete_=True,
                 type={{_base_.dataset_type}},
                 check_images=True,
                 check_cells=True,
                 max_image_size={{_base_.max_image_size}},
                 data_root={{_base_.data_root}},
                 split='prelim_test',
                 test_mode=True,
                 pipeline=test_pipeline))
test_dataloader = dict(
    dataset=dict(_delete_=True,
                 type={{_base_.dataset_type}},
                 check_images=True,
                 max_image_size={{_base_.max_image_size}},
                 data_root={{_base_.data_root}},
                 split='final_test',
                 subdirs=dict(final_csv='testing_data/C-NMC_test_final_phase_data_labels.csv'),
                 labels_optional=True,
                 test_mode=True,
                 pipeline=test_pipeline))
val_evaluator = dict(type='BinaryClassificationMetric')
test_evaluator = dict(type='BinaryClassificationMetric', submission_file='isbi_valid.predict')
