"""Tests of ClassWeightHook: label counting through dataset wrappers, W_i = N / (c n_i), and a
real Runner that sets 'auto' weights on a tiny classifier before its first iteration."""
import glob
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.dataset import BaseDataset as EngineBaseDataset
from mmengine.dataset import ClassBalancedDataset, ConcatDataset, RepeatDataset
from mmengine.runner import Runner
from mmpretrain.datasets import BaseDataset as ClsBaseDataset

import mmbloodcell.engine  # noqa: F401  (registers the hook)
import mmbloodcell.models  # noqa: F401  (registers the head and the losses)
from mmbloodcell.engine.hooks import ClassWeightHook
from mmbloodcell.datasets.labels import dataset_labels
from mmbloodcell.engine.hooks.class_weight_hook import class_weights_from_counts
from mmbloodcell.registry import HOOKS

CLASSES = ('hem', 'all')


class InMemoryCells(ClsBaseDataset):
    """A tiny mmpretrain dataset held in memory: 32x32 random images with given labels."""

    def __init__(self, labels, classes=CLASSES, **kwargs):
        self._labels = list(labels)
        super().__init__(ann_file='', metainfo=dict(classes=classes),
                         pipeline=[dict(type='PackInputs')], **kwargs)

    def load_data_list(self):
        rng = np.random.default_rng(0)
        return [
            dict(img=rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), gt_label=int(label))
            for label in self._labels
        ]


class PlainInfos(EngineBaseDataset):
    """An mmengine dataset without get_gt_labels: labels only in its data infos."""

    def __init__(self, labels):
        self._labels = list(labels)
        super().__init__(ann_file='', metainfo=dict(classes=CLASSES), serialize_data=False)

    def load_data_list(self):
        return [dict(img_path=f'{i}.bmp', gt_label=np.int64(v)) for i, v in enumerate(self._labels)]


def test_weights_formula():
    w = class_weights_from_counts([30, 10])
    np.testing.assert_allclose(w, [40 / (2 * 30), 40 / (2 * 10)])
    assert (np.array([30, 10]) * w).sum() == pytest.approx(40)
    np.testing.assert_allclose(class_weights_from_counts([5, 5, 5]), [1, 1, 1])
    np.testing.assert_allclose(class_weights_from_counts([1, 2, 5]), [8 / 3, 8 / 6, 8 / 15])
    with pytest.raises(ValueError, match=r'class 1 \(all\) has no training samples'):
        class_weights_from_counts([7, 0], class_names=CLASSES)


def test_collect_labels_plain_and_wrapped():
    labels = [0, 0, 0, 1, 0, 1]
    ds = InMemoryCells(labels)
    np.testing.assert_array_equal(dataset_labels(ds), labels)
    np.testing.assert_array_equal(dataset_labels(PlainInfos(labels)), labels)
    np.testing.assert_array_equal(
        dataset_labels(RepeatDataset(InMemoryCells(labels), times=3)), labels * 3)
    np.testing.assert_array_equal(
        dataset_labels(ConcatDataset([InMemoryCells(labels), InMemoryCells([1, 1])])),
        labels + [1, 1])
    np.testing.assert_array_equal(
        dataset_labels(torch.utils.data.Subset(InMemoryCells(labels), [1, 3, 5])), [0, 1, 1])
    # ClassBalancedDataset over-samples the rare class: the counts follow its repeat indices
    balanced = ClassBalancedDataset(InMemoryCells([0] * 8 + [1] * 2), oversample_thr=0.5)
    got = dataset_labels(balanced)
    assert len(got) == len(balanced) > 10
    want = [balanced.dataset.get_data_info(i)['gt_label'] for i in balanced.repeat_indices]
    np.testing.assert_array_equal(got, want)
    assert np.bincount(got)[1] > 2
    # wrappers nest (mmengine's wrappers only take BaseDataset instances; torch's nest freely)
    nested = torch.utils.data.ConcatDataset([
        RepeatDataset(InMemoryCells([0, 1]), times=2),
        torch.utils.data.Subset(ClassBalancedDataset(InMemoryCells([0, 0, 0, 1]), 0.5), [0, 3])
    ])
    np.testing.assert_array_equal(dataset_labels(nested), [0, 1, 0, 1, 0, 1])


def test_collect_labels_rejects_multilabel_and_unknown():
    class MultiLabel(PlainInfos):

        def load_data_list(self):
            return [dict(gt_label=[0, 1]), dict(gt_label=[1])]

    with pytest.raises(ValueError, match='one integer class index per sample'):
        dataset_labels(MultiLabel([0, 1]))
    with pytest.raises(TypeError, match='cannot read the labels of TensorDataset'):
        dataset_labels(torch.utils.data.TensorDataset(torch.zeros(3)))


def _runner(tmp_path, labels, loss, num_classes=None, name='run'):
    model = dict(
        type='ImageClassifier',
        backbone=dict(type='ResNet', depth=18, stem_channels=8, base_channels=8, init_cfg=None),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='BinaryClsHead', in_channels=64, hidden_channels=8, loss=loss))
    hook = dict(type='ClassWeightHook')
    if num_classes is not None:
        hook['num_classes'] = num_classes
    return Runner(
        model=model,
        work_dir=str(tmp_path / name),
        train_dataloader=dict(
            dataset=InMemoryCells(labels), sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=4, num_workers=0),
        train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        custom_hooks=[hook],
        default_hooks=dict(checkpoint=None),
        default_scope='mmpretrain',
        log_level='INFO',
        experiment_name=name)


def test_hook_sets_auto_weights_before_training(tmp_path):
    labels = [0, 0, 0, 0, 0, 0, 1, 1]  # N = 8, n = (6, 2) -> W = (8/12, 8/4)
    runner = _runner(tmp_path, labels, dict(type='WeightedBCELoss', class_weight='auto'))
    loss = runner.model.head.loss_module
    assert loss.weights is None
    runner.train()  # would raise in the first iteration if the weights were not set
    assert loss.weights == pytest.approx((8 / 12, 8 / 4))
    log = open(glob.glob(osp.join(str(tmp_path / 'run'), '*', '*.log'))[0]).read()
    assert 'ClassWeightHook: 8 training samples, hem: n=6 W=0.6667, all: n=2 W=2.0000' in log
    assert 'class weights set on head.loss_module (WeightedBCELoss)' in log


def test_hook_errors(tmp_path):
    # a class without samples
    runner = _runner(tmp_path, [0, 0, 0, 0], dict(type='WeightedBCELoss', class_weight='auto'),
                     name='empty')
    with pytest.raises(ValueError, match=r'class 1 \(all\) has no training samples'):
        runner.train()
    # more classes than the binary loss takes
    runner = _runner(tmp_path, [0, 1, 2, 2], dict(type='WeightedBCELoss', class_weight='auto'),
                     num_classes=3, name='three')
    with pytest.raises(ValueError, match=r'cannot set the 3 class weights on head.loss_module'):
        runner.train()


def test_hook_built_from_registry_and_checks_args():
    assert isinstance(HOOKS.build(dict(type='ClassWeightHook')), ClassWeightHook)
    with pytest.raises(ValueError, match='num_classes must be a positive int'):
        ClassWeightHook(num_classes=0)
