"""mmcv must be built WITH its compiled ops: Sparse R-CNN needs RoIAlign, every detector NMS."""
import torch


def test_mmcv_ops_compiled():
    import mmcv
    from mmcv.utils import ext_loader
    assert mmcv.__version__ == '2.1.0'
    ext = ext_loader.load_ext('_ext', ['nms', 'roi_align_forward'])
    assert hasattr(ext, 'nms') and hasattr(ext, 'roi_align_forward')


def test_nms_cpu():
    from mmcv.ops import nms
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.], [20., 20., 30., 30.]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    # IoU(box0, box1) = 81 / 119 = 0.68 > 0.5: box1 is suppressed
    dets, keep = nms(boxes, scores, iou_threshold=0.5)
    assert keep.tolist() == [0, 2]
    assert torch.allclose(dets, torch.tensor([[0., 0., 10., 10., 0.9], [20., 20., 30., 30., 0.7]]))
    _, keep = nms(boxes, scores, iou_threshold=0.7)
    assert keep.tolist() == [0, 1, 2]


def test_roi_align_cpu():
    from mmcv.ops import RoIAlign
    # feature value = x coordinate of the pixel centre
    feat = torch.arange(4.).repeat(4, 1)[None, None]  # (1, 1, 4, 4)
    rois = torch.tensor([[0., 0., 0., 4., 4.]])  # (batch index, x1, y1, x2, y2)
    out = RoIAlign(output_size=(2, 2), spatial_scale=1.0, sampling_ratio=2, aligned=True)(
        feat, rois)
    # aligned box [-0.5, 3.5]: bin 0 samples x = 0, 1 -> 0.5; bin 1 samples x = 2, 3 -> 2.5
    assert out.shape == (1, 1, 2, 2)
    assert torch.allclose(out[0, 0], torch.tensor([[0.5, 2.5], [0.5, 2.5]]))
    # and it agrees with torchvision's implementation on random data
    from torchvision.ops import roi_align
    g = torch.Generator().manual_seed(0)
    feat = torch.rand(2, 3, 16, 16, generator=g)
    rois = torch.tensor([[0., 1.5, 2., 9., 12.], [1., 0., 0., 15., 7.5]])
    ours = RoIAlign((3, 3), 0.5, 2, aligned=True)(feat, rois)
    ref = roi_align(feat, rois, (3, 3), 0.5, 2, aligned=True)
    assert torch.allclose(ours, ref, atol=1e-5)
