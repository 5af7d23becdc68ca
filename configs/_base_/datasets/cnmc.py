# C-NMC 2019 (ISBI 2019 challenge): hem (label 0) vs all (label 1), one segmented cell per image.
#
# data_root is the `C-NMC_Leukemia` folder of the official release, unpacked (or linked) as
#   data/C-NMC_Leukemia/
#   ├── training_data/fold_{0,1,2}/{all,hem}/UID_<patient>_<image>_<cell>_{all,hem}.bmp
#   ├── validation_data/C-NMC_test_prelim_phase_data/<N>.bmp
#   ├── validation_data/C-NMC_test_prelim_phase_data_labels.csv  (Patient_ID,new_names,labels)
#   └── testing_data/C-NMC_test_final_phase_data/<N>.bmp           (unlabelled)
# Elsewhere: tools/train.py CONFIG --data-root /path/to/C-NMC_Leukemia (every split follows).
#
# Splits: train = folds 0-2, 80 % of the patients; val = the other 20 % (patient-wise, no
# patient on both sides, stratified by class, seed 0); test = the labelled preliminary test.
# For predictions on the unlabelled final test use
#   test_dataloader.dataset.split=final_test test_evaluator=[] and tools/test.py --out preds.pkl
# or, for the CodaLab submission file (isbi_valid.predict beside the metrics JSON; zip it
# with tools/analysis/cnmc_submission_zip.py) and scores where the final labels are at hand:
#   test_dataloader.dataset.split=final_test test_dataloader.dataset.labels_optional=True
#   test_dataloader.dataset.subdirs.final_csv=testing_data/C-NMC_test_final_phase_data_labels.csv
#   test_evaluator.submission_file=isbi_valid.predict
# Every image file is checked once at start-up (header and size, no decoding): an empty,
# truncated or non-image file, or one larger than max_image_size (450x450 expected), stops
# the run with its path and the fix instead of failing mid-epoch (on_error='skip' drops it).
# check_cells also decodes every image once and warns about cells unlike C-NMC's (background
# not black, grayscale, lossy JPEG).
max_image_size = 4096
dataset_type = 'CNMCDataset'
data_root = 'data/C-NMC_Leukemia/'
# Reinhard / Macenko statistics of the training cells for the stain-norm configs, written by
#   python tools/analysis/cnmc_stain_reference.py data/C-NMC_Leukemia
stain_reference = data_root + 'stain_reference.json'
# training-set mean/std (RGB, after CropToCell + Resize) for
#   data_preprocessor = dict(type='StatsFileClsDataPreprocessor', stats_file=mean_std_file),
# written by python tools/analysis/cnmc_mean_std.py data/C-NMC_Leukemia
mean_std_file = data_root + 'mean_std.json'
img_size = 224
patient_split_ratio = 0.8
patient_split_seed = 0

# patient_id reaches the metric (patient-level majority vote) through the data samples, and
# number (N of the test image N.bmp) orders the lines of its challenge submission file
meta_keys = ('sample_idx', 'img_path', 'ori_shape', 'img_shape', 'patient_id', 'file_name',
             'number')

train_pipeline = [
    dict(type='LoadImageFromFile'),
    # rotate the whole 450x450 frame on a canvas grown to hold all of it (expand: no part of
    # a cell leaves the frame, however long or off-centre), then crop tightly around it
    dict(type='RandomRotate', angle=180, prob=0.5, expand=True),
    dict(type='CropToCell', margin=2),
    # dict(type='CLAHE', clip_limit=2.0),  # optional contrast enhancement of the luminance
    dict(type='Resize', scale=(img_size, img_size)),
    dict(type='RandomFlip', prob=[0.25, 0.25], direction=['horizontal', 'vertical']),
    dict(type='PackInputs', meta_keys=meta_keys),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='CropToCell', margin=2),
    # dict(type='CLAHE', clip_limit=2.0),
    dict(type='Resize', scale=(img_size, img_size)),
    dict(type='PackInputs', meta_keys=meta_keys),
]

train_dataloader = dict(
    batch_size=32,
    num_workers=4,
    persistent_workers=True,
    # online oversampling of the minority class (hem) to the size of the majority (all)
    sampler=dict(type='ClassBalancedOverSampler', target_ratio=1.0, shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type=dataset_type,
        check_images=True,
        check_cells=True,
        max_image_size=max_image_size,
        data_root=data_root,
        split='train',
        folds=(0, 1, 2),
        patient_split=dict(ratio=patient_split_ratio, subset='train', seed=patient_split_seed),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=32,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type=dataset_type,
        check_images=True,
        check_cells=True,
        max_image_size=max_image_size,
        data_root=data_root,
        split='train',
        folds=(0, 1, 2),
        patient_split=dict(ratio=patient_split_ratio, subset='val', seed=patient_split_seed),
        test_mode=True,
        pipeline=test_pipeline))
# the test split, the labelled preliminary test set: val's loader and dataset, without the
# training folds and the patient split (they would select from the test cells too)
test_dataloader = dict(val_dataloader, dataset=dict(val_dataloader['dataset'], split='prelim_test'))
del test_dataloader['dataset']['folds'], test_dataloader['dataset']['patient_split']

val_evaluator = dict(type='BinaryClassificationMetric')
test_evaluator = val_evaluator
