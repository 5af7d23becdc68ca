"""YOLOv7Head on real BCCD images: losses and gradients, learning on fixed features, decoding and
rescaling of predictions, folding of the implicit layers, the reference's parameter count, and
the head inside mmdet's SingleStageDetector."""
import math

import pytest
import torch
from mmdet.registry import DATASETS, MODELS
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData

import mmbloodcell  # noqa: F401

STRIDES = (8, 16, 32)
TINY = (128, 256, 512)  # the channels the YOLOv7-tiny neck hands the head
PREPROCESSOR = dict(type='DetDataPreprocessor', mean=[0., 0., 0.], std=[255., 255., 255.],
                    bgr_to_rgb=True, pad_size_divisor=32)


@pytest.fixture(autouse=True)
def _mmdet_scope():
    """mmdet's registries, whatever scope an earlier test left (the suite mixes libraries)."""
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield


@pytest.fixture(scope='module')
def bccd_batch(bccd_mini):
    """Two real BCCD training smears (640x480) resized to 320x240, through mmdet's pipeline and
    ``DetDataPreprocessor``: inputs (2, 3, 256, 320) and their data samples (boxes in the
    resized image, ``scale_factor`` 0.5)."""
    with DefaultScope.overwrite_default_scope('mmdet'):
        dataset = DATASETS.build(dict(
            type='BCCDDataset', data_root=bccd_mini['data_root'], ann_file=bccd_mini['train'],
            data_prefix=dict(img='JPEGImages/'), indices=2,
            pipeline=[dict(type='LoadImageFromFile'),
                      dict(type='LoadAnnotations', with_bbox=True),
                      dict(type='Resize', scale=(320, 240), keep_ratio=True),
                      dict(type='PackDetInputs')]))
        data = MODELS.build(PREPROCESSOR)(pseudo_collate([dataset[0], dataset[1]]), True)
    return data['inputs'], data['data_samples']


@pytest.fixture(scope='module')
def features(bccd_batch):
    """Stride 8 / 16 / 32 maps of the tiny interface's channels from three fixed (seeded,
    untrained) strided convolutions over the real images."""
    torch.manual_seed(0)
    convs = [torch.nn.Conv2d(3, 128, 8, stride=8), torch.nn.Conv2d(128, 256, 2, stride=2),
             torch.nn.Conv2d(256, 512, 2, stride=2)]
    feats, x = [], bccd_batch[0]
    with torch.no_grad():
        for conv in convs:
            x = torch.relu(conv(x))
            feats.append(x)
    return tuple(feats)


def _head(num_classes=3, in_channels=TINY, **kwargs):
    torch.manual_seed(1)
    head = MODELS.build(dict(type='YOLOv7Head', num_classes=num_classes,
                             in_channels=in_channels, **kwargs))
    head.init_weights()
    return head


def test_loss_on_real_boxes_is_finite_with_gradients(features, bccd_batch):
    samples = bccd_batch[1]
    assert all(len(s.gt_instances) > 5 for s in samples)
    head = _head()
    losses = head.loss(features, samples)
    assert set(losses) == {'loss_bbox', 'loss_obj', 'loss_cls'}
    assert all(math.isfinite(v.item()) and v.item() > 0 for v in losses.values())
    sum(losses.values()).backward()
    for name, param in head.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


def test_images_without_boxes_train_objectness_only(features, bccd_batch):
    samples = [s.clone() for s in bccd_batch[1]]
    for s in samples:
        s.gt_instances = InstanceData(bboxes=torch.zeros(0, 4),
                                      labels=torch.zeros(0, dtype=torch.long))
    losses = _head().loss(features, samples)
    assert losses['loss_bbox'] == 0 and losses['loss_cls'] == 0 and losses['loss_obj'] > 0
    sum(losses.values()).backward()


def test_box_and_class_losses_decrease_on_fixed_features(features, bccd_batch):
    """The objectness target is each positive's CIoU, which grows as the boxes improve, so the
    objectness loss need not fall in a short run; the box and class losses must."""
    head = _head()
    optim = torch.optim.Adam(head.parameters(), lr=3e-3)
    history = []
    for _ in range(25):
        losses = head.loss(features, bccd_batch[1])
        history.append({k: v.item() for k, v in losses.items()})
        optim.zero_grad()
        sum(losses.values()).backward()
        optim.step()
    assert history[-1]['loss_bbox'] < 0.9 * history[0]['loss_bbox']
    assert history[-1]['loss_cls'] < 0.5 * history[0]['loss_cls']
    assert all(math.isfinite(h['loss_obj']) for h in history)


def test_bias_priors_are_added_once():
    head = MODELS.build(dict(type='YOLOv7Head', num_classes=3, in_channels=TINY))
    before = [conv.bias.detach().clone().view(3, 8) for conv in head.convs]
    head.init_weights()
    head.init_weights()  # a second call changes nothing
    for conv, bias, stride in zip(head.convs, before, STRIDES):
        added = conv.bias.detach().view(3, 8) - bias
        torch.testing.assert_close(added[:, :4], torch.zeros(3, 4))
        torch.testing.assert_close(added[:, 4], torch.full((3,), math.log(8 / (640 / stride)
                                                                          ** 2)))
        torch.testing.assert_close(added[:, 5:], torch.full((3, 3), math.log(0.6 / 2.01)))


def test_decoding_and_rescaling_to_the_original_image():
    """Hand-made raw maps with one confident prediction: stride 8 cell (x 5, y 8), anchor 1
    (19x36), offsets sigmoid(t) = 0.75 -> centre ((2 * 0.75 - 0.5 + (5, 8)) * 8 = (48, 72),
    size (2 * 0.75)^2 x the anchor; in the original image (scale_factor 0.5) twice that."""
    head = _head(test_cfg=dict(score_thr=0.5, nms=dict(type='nms', iou_threshold=0.65),
                               max_per_img=10))
    maps = [torch.full((1, 24, 240 // s, 320 // s), -20.) for s in STRIDES]
    raw = maps[0].view(1, 3, 8, 30, 40)
    raw[0, 1, :4, 8, 5] = math.log(3)  # sigmoid = 0.75
    raw[0, 1, 4, 8, 5] = raw[0, 1, 7, 8, 5] = 10.  # objectness and class 2
    meta = dict(img_shape=(240, 320), ori_shape=(480, 640), scale_factor=(0.5, 0.5))
    xy, wh = torch.tensor([48., 72.]), 2.25 * torch.tensor([19., 36.])
    expected = torch.cat([xy - wh / 2, xy + wh / 2])
    for rescale, scale in ((False, 1), (True, 2)):
        res = head.predict_by_feat(maps, batch_img_metas=[meta], rescale=rescale)[0]
        assert res.labels.tolist() == [2]
        torch.testing.assert_close(res.bboxes[0], expected * scale)
        torch.testing.assert_close(res.scores, torch.sigmoid(torch.tensor([10.])) ** 2)


def test_predict_on_real_images_in_original_coordinates(features, bccd_batch):
    head = _head(test_cfg=dict(multi_label=True, nms_pre=1000, score_thr=0.001,
                               nms=dict(type='nms', iou_threshold=0.65), max_per_img=50))
    head.eval()
    samples = bccd_batch[1]
    with torch.no_grad():
        rescaled = head.predict(features, samples, rescale=True)
        resized = head.predict(features, samples, rescale=False)
    for r, s, small in zip(rescaled, samples, resized):
        assert s.metainfo['ori_shape'] == (480, 640) and s.metainfo['img_shape'] == (240, 320)
        assert 0 < len(r) <= 50 and r.bboxes.shape == (len(r), 4)
        assert (r.bboxes >= 0).all() and (r.bboxes[:, 0::2] <= 640).all()
        assert (r.bboxes[:, 1::2] <= 480).all() and r.bboxes[:, 2:].max() > 320
        assert set(r.labels.tolist()) <= {0, 1, 2} and (r.scores > 0.001).all()
        assert (r.scores[:-1] >= r.scores[1:]).all()
        torch.testing.assert_close(r.bboxes, small.bboxes * 2)
    single = _head(test_cfg=dict(multi_label=False, score_thr=0.001, max_per_img=50,
                                 nms=dict(type='nms', iou_threshold=0.65)))
    with torch.no_grad():
        res = single.predict(features, samples, rescale=True)
    assert all(0 < len(r) <= 50 for r in res)


def test_switch_to_deploy_folds_the_implicit_layers(features):
    head = _head()
    with torch.no_grad():  # implicit values far from their initial 0 / 1, so folding matters
        for a, m in zip(head.implicit_a, head.implicit_m):
            a.implicit.normal_(0., 0.5)
            m.implicit.normal_(1., 0.5)
        before = head(features)[0]
    num_params = sum(p.numel() for p in head.parameters())
    head.switch_to_deploy()
    with torch.no_grad():
        after = head(features)[0]
    for b, a in zip(before, after):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert not any('implicit' in k for k in head.state_dict())
    assert sum(p.numel() for p in head.parameters()) == num_params - sum(TINY) - 3 * 24


# The reference's IDetect(nc=80, anchors 3 per level, ch) (models/yolo.py): per level
# Conv2d(ch, 255, 1) (ch * 255 + 255), ImplicitA(ch) and ImplicitM(255); its deploy configs
# (cfg/deploy/*.yaml) use Detect: the convolutions only. tiny: 896 * 255 + 3 * 255 = 229245,
# + 896 + 3 * 255 = 230906; l: 1792 * 255 + 765 = 457725, + 1792 + 765 = 460282.
@pytest.mark.parametrize('in_channels, train_count, deploy_count', [
    ((128, 256, 512), 230906, 229245),
    ((256, 512, 1024), 460282, 457725),
])
def test_parameter_count_equals_the_reference(in_channels, train_count, deploy_count):
    head = _head(num_classes=80, in_channels=in_channels)
    assert sum(p.numel() for p in head.parameters()) == train_count
    head.switch_to_deploy()
    assert sum(p.numel() for p in head.parameters()) == deploy_count


def test_in_single_stage_detector(bccd_batch):
    """The head as mmdet's SingleStageDetector bbox_head (a ResNet-18 gives the tiny
    interface's channels at strides 8 / 16 / 32): a training loss and predictions per image."""
    inputs, samples = bccd_batch
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='SingleStageDetector', data_preprocessor=PREPROCESSOR,
        backbone=dict(type='ResNet', depth=18, out_indices=(1, 2, 3), init_cfg=None),
        bbox_head=dict(type='YOLOv7Head', num_classes=3, in_channels=TINY),
        train_cfg=dict(assigner=dict(type='YOLOv7Assigner', anchor_t=4.0)),
        test_cfg=dict(multi_label=True, nms_pre=1000, score_thr=0.001,
                      nms=dict(type='nms', iou_threshold=0.65), max_per_img=20)))
    model.init_weights()
    head = model.bbox_head
    assert head.assigner.anchor_t == 4.0 and head.test_cfg['max_per_img'] == 20
    losses = model(inputs, samples, mode='loss')
    assert set(losses) == {'loss_bbox', 'loss_obj', 'loss_cls'}
    sum(losses.values()).backward()
    assert model.backbone.conv1.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        out = model(inputs, [s.clone() for s in samples], mode='predict')
    for s in out:
        pred = s.pred_instances
        assert 0 < len(pred) <= 20 and (pred.bboxes[:, 0::2] <= 640).all()
