"""Hungarian matching whose costs are computed in float32, so that it works under AMP."""
import contextlib
from typing import Optional

import torch
from mmdet.models.task_modules.assigners import AssignResult, HungarianAssigner
from mmengine.structures import InstanceData

from mmbloodcell.registry import DET_TASK_UTILS


@DET_TASK_UTILS.register_module()
class Fp32HungarianAssigner(HungarianAssigner):
    """mmdet's :class:`HungarianAssigner` (DETR / Sparse R-CNN set matching) with the match
    costs computed in float32, and a plain error when scipy's ``linear_sum_assignment`` still
    finds them not finite.

    Under AMP, mmdet's ``FocalLossCost`` computes ``-log(1 - sigmoid(s) + eps)`` in float16,
    where ``eps = 1e-12`` is 0: a saturated logit (``s`` ~ 8) gives an infinite cost and scipy's
    "matrix contains invalid numeric entries". Here the predictions' floating-point fields are
    cast to float32 and autocast is off while the costs are computed (float32 training is
    unchanged). ``match_costs`` as ``HungarianAssigner``.
    """

    def assign(self, pred_instances: InstanceData, gt_instances: InstanceData,
               img_meta: Optional[dict] = None, **kwargs) -> AssignResult:
        pred32 = InstanceData(metainfo=pred_instances.metainfo)
        for key, value in pred_instances.items():
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                value = value.float()
            pred32[key] = value
        device_type = next((v.device.type for v in pred_instances.values()
                            if isinstance(v, torch.Tensor)), 'cpu')
        with self._explain_non_finite_cost(), \
                torch.autocast(device_type=device_type, enabled=False):
            return super().assign(pred32, gt_instances, img_meta=img_meta, **kwargs)

    @contextlib.contextmanager
    def _explain_non_finite_cost(self):
        """Turn scipy's "matrix contains invalid numeric entries" (from ``linear_sum_assignment``
        on a non-finite float32 cost) into an error that names the cause and the fix."""
        try:
            yield
        except ValueError as e:
            if 'invalid numeric entries' not in str(e):
                raise
            raise ValueError(
                f'{type(self).__name__}: the matching cost is not finite although it was '
                f'computed in float32, so the predictions hold NaN or inf: the model diverged. '
                f'Lower the learning rate, add warm-up or gradient clipping '
                f'(optim_wrapper.clip_grad), and check the input normalisation. ({e})') from e
