# Copyright (c) mmbloodcell contributors. All rights reserved.
"""An ``ImageClassifier`` whose training step can run as one CUDA graph (benchmarks:
benchmarks/cnmc_classification.md)."""
import contextlib
from typing import Dict, Optional, Tuple, Union

import torch
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper
from mmpretrain.models.classifiers import ImageClassifier
from torch import Tensor

from mmbloodcell.registry import CLS_MODELS

__all__ = ['FastImageClassifier']

_DTYPES = {'bfloat16': torch.bfloat16, 'bf16': torch.bfloat16, 'float16': torch.float16,
           'fp16': torch.float16}
_COMPILE_CUDAGRAPH_MODES = ('reduce-overhead', 'max-autotune')


@CLS_MODELS.register_module()
class FastImageClassifier(ImageClassifier):
    """``ImageClassifier`` with channels-last weights, autocast, torch.compile and a training
    step captured as one CUDA graph.

    The model, its ``state_dict`` (checkpoints load into either class) and the loss of a step
    are those of mmpretrain's :class:`~mmpretrain.models.classifiers.ImageClassifier`; only how
    the step runs on the GPU changes (small batches launch thousands of small kernels from
    Python, and the GPU waits for the launches):

    - ``channels_last``: 4-D weights and input batches in NHWC, which cuDNN prefers for
      float16 / bfloat16.
    - ``autocast_dtype``: the forward pass (loss and validation included) runs under
      ``torch.autocast``. No loss scaler (bfloat16 has float32's exponent range), so no scaler
      kernels and no host sync; the binary losses compute in float32. float16 *training* needs
      a loss scaler: use ``AmpOptimWrapper``.
    - ``cuda_graph``: on a CUDA device, :meth:`train_step` runs ``graph_warmup_iters`` eager
      steps on a side stream (cuDNN autotuning, optimizer state), then captures forward, loss,
      backward and ``optimizer.step()`` into a ``torch.cuda.CUDAGraph`` replayed for every later
      batch of the same shape (copied into static buffers; pre-processing stays eager). A batch
      of another shape (an epoch's last) runs eagerly on the same parameters and optimizer
      state. The optimizer is made ``capturable``; each group's lr is a GPU tensor refreshed
      from ``param_group['lr']`` before each replay (lr schedules work); a change of any other
      hyper-parameter re-captures. The loss is ``head.loss_module(head(feats), labels,
      avg_factor=N)`` as ``ClsHead._get_loss`` computes it, with the labels checked on the host
      (binary ones passed as ``bool``, which the binary losses do not check on the device).
      Requirements, checked: a plain ``OptimWrapper`` (for mixed precision
      ``autocast_dtype='bfloat16'``), no gradient clipping or accumulation, one process
      (MMDistributedDataParallel calls the stock step), hard labels (no Mixup / CutMix). On a
      CPU the option is ignored.
    - ``compile``: ``torch.compile`` the backbone in place (``nn.Module.compile``: the
      ``state_dict`` keys do not change); with ``cuda_graph`` only in a mode without CUDA
      graphs, e.g. ``dict(mode='max-autotune-no-cudagraphs')``.

    Args:
        channels_last (bool): Use the channels-last memory format. Defaults to False.
        autocast_dtype (str, optional): ``'bfloat16'`` / ``'float16'`` (refused by
            ``cuda_graph`` training steps), or None (float32). Defaults to None.
        cuda_graph (bool): Capture the training step as a CUDA graph. Defaults to False.
        graph_warmup_iters (int): Eager steps before the capture, >= 1. Defaults to 3.
        compile (bool | dict, optional): True or ``torch.compile`` arguments. Defaults to None.
        **kwargs: The arguments of ``ImageClassifier`` (backbone, neck, head, ...).
    """

    def __init__(self,
                 *args,
                 channels_last: bool = False,
                 autocast_dtype: Optional[str] = None,
                 cuda_graph: bool = False,
                 graph_warmup_iters: int = 3,
                 compile: Optional[Union[bool, dict]] = None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        if autocast_dtype is not None and autocast_dtype not in _DTYPES:
            raise ValueError(f"FastImageClassifier: autocast_dtype must be 'bfloat16', "
                             f"'float16' or None, got {autocast_dtype!r}")
        if isinstance(graph_warmup_iters, bool) or not isinstance(graph_warmup_iters, int) \
                or graph_warmup_iters < 1:
            raise ValueError(f'FastImageClassifier: graph_warmup_iters must be an int >= 1 '
                             f'(cuDNN autotuning and the optimizer state need eager steps '
                             f'before the capture), got {graph_warmup_iters!r}')
        if compile is not None and not isinstance(compile, (bool, dict)):
            raise TypeError(f'FastImageClassifier: compile must be a bool or a dict of '
                            f'torch.compile arguments, got {type(compile).__name__}')
        compile_cfg = dict(compile) if isinstance(compile, dict) else (
            {} if compile else None)
        if cuda_graph and compile_cfg is not None and (
                compile_cfg.get('mode') in _COMPILE_CUDAGRAPH_MODES
                or (compile_cfg.get('options') or {}).get('triton.cudagraphs')):
            raise ValueError(
                f"FastImageClassifier: cuda_graph=True captures the whole step itself; "
                f"torch.compile mode {compile_cfg.get('mode')!r} records CUDA graphs too. "
                f"Use compile=dict(mode='max-autotune-no-cudagraphs') (or the default mode) "
                f"with cuda_graph, or cuda_graph=False with mode='reduce-overhead'")
        self.channels_last = bool(channels_last)
        self.autocast_dtype = _DTYPES[autocast_dtype] if autocast_dtype else None
        self.cuda_graph = bool(cuda_graph)
        self.graph_warmup_iters = graph_warmup_iters
        self.compile_cfg = compile_cfg
        self._compile_cudagraphs = compile_cfg is not None and (
            compile_cfg.get('mode') in _COMPILE_CUDAGRAPH_MODES)
        if self.channels_last:
            self.to(memory_format=torch.channels_last)
        if compile_cfg is not None:
            self.backbone.compile(**compile_cfg)
        self._graph_state: Optional[dict] = None
        self._warmup_done = 0
        self._eager_note = False

    def _autocast(self, device: torch.device):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        # cache_enabled=False: no cached weight casts survive into (or out of) a CUDA graph
        return torch.autocast(device.type, dtype=self.autocast_dtype, cache_enabled=False)

    def _format(self, inputs):
        if self.channels_last and isinstance(inputs, Tensor) and inputs.dim() == 4:
            return inputs.contiguous(memory_format=torch.channels_last)
        return inputs

    def forward(self, inputs, data_samples=None, mode: str = 'tensor'):
        """As ``ImageClassifier.forward`` (modes ``'tensor'``, ``'loss'``, ``'predict'``),
        in the configured memory format and autocast dtype."""
        if self._compile_cudagraphs and not self.training:
            torch.compiler.cudagraph_mark_step_begin()
        inputs = self._format(inputs)
        device = inputs.device if isinstance(inputs, Tensor) else torch.device('cpu')
        with self._autocast(device):
            return super().forward(inputs, data_samples, mode)

    def train_step(self, data: Union[dict, tuple, list],
                   optim_wrapper: OptimWrapper) -> Dict[str, Tensor]:
        """One optimisation step; through the CUDA graph when ``cuda_graph`` is set and the
        model is on a CUDA device, else mmengine's stock step."""
        if self._compile_cudagraphs:
            torch.compiler.cudagraph_mark_step_begin()
        device = next(self.parameters()).device
        if not self.cuda_graph or device.type != 'cuda':
            if self.cuda_graph and not self._eager_note:
                print_log(f'FastImageClassifier: cuda_graph=True but the model is on '
                          f'{device.type}: training steps run eagerly', logger='current')
                self._eager_note = True
            if (self.autocast_dtype == torch.float16 and optim_wrapper.__class__ is
                    OptimWrapper):
                raise ValueError(
                    "FastImageClassifier: autocast_dtype='float16' training needs a loss "
                    "scaler: use optim_wrapper=dict(type='AmpOptimWrapper', "
                    "dtype='float16') or autocast_dtype='bfloat16'")
            return super().train_step(data, optim_wrapper)
        self._check_graph_optim_wrapper(optim_wrapper)
        labels = self._labels(data)
        if isinstance(data, dict) and \
                getattr(self.data_preprocessor, 'batch_augments', None) is None:
            # the labels travel separately (pinned, asynchronously): no per-sample copies
            data = dict(data, data_samples=None)
        with optim_wrapper.optim_context(self):
            data = self.data_preprocessor(data, True)
        inputs = data['inputs'] if isinstance(data, dict) else data[0]
        target = labels.pin_memory().to(device, non_blocking=True)
        loss = self._graph_train_step(inputs, target, optim_wrapper.optimizer)
        optim_wrapper._inner_count += 1  # what OptimWrapper.update_params counts
        return dict(loss=loss)

    def _check_graph_optim_wrapper(self, optim_wrapper: OptimWrapper) -> None:
        problems = []
        if optim_wrapper.__class__ is not OptimWrapper:
            problems.append(f'optim_wrapper type {type(optim_wrapper).__name__} (use the plain '
                            f"OptimWrapper; mixed precision: autocast_dtype='bfloat16')")
        if getattr(optim_wrapper, 'clip_grad_kwargs', None):
            problems.append('clip_grad (its norm is logged through a host sync)')
        if getattr(optim_wrapper, '_accumulative_counts', 1) != 1:
            problems.append('accumulative_counts > 1')
        if self.autocast_dtype == torch.float16:
            problems.append("autocast_dtype='float16' (needs a loss scaler; use 'bfloat16')")
        if problems:
            raise ValueError('FastImageClassifier(cuda_graph=True) cannot capture this '
                             'training step: ' + '; '.join(problems) + '. Fix the config or '
                             'set model.cuda_graph=False')

    def _labels(self, data) -> Tensor:
        """The batch's hard labels as a host tensor, checked on the host: ``bool`` for a
        single-logit (binary) head, ``int64`` otherwise."""
        samples = data.get('data_samples') if isinstance(data, dict) else data[1]
        if not samples:
            raise ValueError('FastImageClassifier.train_step needs data_samples with labels')
        if 'gt_score' in samples[0] or 'gt_label' not in samples[0]:
            raise ValueError('FastImageClassifier(cuda_graph=True) needs hard labels '
                             '(DataSample.gt_label) and no soft gt_score: remove Mixup / '
                             "CutMix from the model's data_preprocessor.batch_augments")
        labels = torch.cat([s.gt_label.reshape(-1).cpu() for s in samples])
        if self._binary_head():
            if labels.dtype != torch.bool:
                if not bool(((labels == 0) | (labels == 1)).all()):
                    raise ValueError(f'FastImageClassifier: labels must be 0 or 1 for the '
                                     f'binary head {type(self.head).__name__}, got '
                                     f'{torch.unique(labels).tolist()[:5]}')
                labels = labels.bool()
        return labels

    def _binary_head(self) -> bool:
        from mmbloodcell.models.heads import BinaryClsHead
        return isinstance(self.head, BinaryClsHead)

    def tensor_loss(self, inputs: Tensor, target: Tensor) -> Tensor:
        """``loss_module(head(neck(backbone(x))), labels, avg_factor=N)`` of normalised images
        ``(N, C, H, W)`` and labels ``(N,)`` (``bool`` for a binary head, whose ``(N, 1)``
        logits are flattened) on the model's device, as ``ClsHead._get_loss`` computes it."""
        inputs = self._format(inputs)
        with self._autocast(inputs.device):
            cls_score = self.head(self.extract_feat(inputs))
            if self._binary_head():
                cls_score = cls_score.reshape(-1)
            return self.head.loss_module(cls_score, target, avg_factor=cls_score.size(0))

    def _step_body(self, inputs: Tensor, target: Tensor, optimizer) -> Tensor:
        loss = self.tensor_loss(inputs, target)
        loss.backward()
        optimizer.step()
        return loss

    @staticmethod
    def _make_capturable(optimizer) -> None:
        """Set ``capturable`` on optimizers that have it (Adam, AdamW, ...), moving step
        counters that an earlier (e.g. resumed) state keeps on the host to the device."""
        for group in optimizer.param_groups:
            if 'capturable' not in group or group['capturable']:
                continue
            group['capturable'] = True
            for p in group['params']:
                state = optimizer.state.get(p)
                if state and isinstance(state.get('step'), Tensor) and \
                        state['step'].device != p.device:
                    state['step'] = state['step'].to(p.device, torch.float32)

    @staticmethod
    def _hyper_key(optimizer) -> Tuple:
        """Hyper-parameters baked into the captured optimizer step (all but the lr)."""
        return tuple(
            tuple((k, v if not isinstance(v, Tensor) else float(v)) for k, v in sorted(
                g.items()) if k not in ('params', 'lr', 'initial_lr'))
            for g in optimizer.param_groups)

    def _graph_train_step(self, inputs: Tensor, target: Tensor, optimizer) -> Tensor:
        st = self._graph_state
        key = (tuple(inputs.shape), inputs.dtype, tuple(target.shape), target.dtype)
        if st is not None and st['hyper'] != self._hyper_key(optimizer):
            print_log('FastImageClassifier: optimizer hyper-parameters changed, re-capturing '
                      'the training step', logger='current')
            self._graph_state = st = None
        if st is None and self._warmup_done < self.graph_warmup_iters:
            # eager warm-up on a side stream (as torch.cuda.graphs requires)
            self._make_capturable(optimizer)
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                optimizer.zero_grad(set_to_none=True)
                loss = self._step_body(inputs, target, optimizer).detach()
            torch.cuda.current_stream().wait_stream(side)
            self._warmup_done += 1
            return loss.clone()
        if st is None:
            st = self._capture(inputs, target, optimizer, key)
        if key != st['key']:
            # another batch shape: an eager step on the same parameters and optimizer state
            # (the gradients are the graph's tensors, zeroed in place and accumulated into)
            optimizer.zero_grad(set_to_none=False)
            return self._step_body(inputs, target, optimizer).detach().clone()
        st['x'].copy_(inputs, non_blocking=True)
        st['y'].copy_(target, non_blocking=True)
        for group, lr_t in zip(optimizer.param_groups, st['lr']):
            if group['lr'] != lr_t[1]:
                lr_t[0].fill_(float(group['lr']))
                lr_t[1] = group['lr']
        st['graph'].replay()
        return st['loss'].detach().clone()

    def _capture(self, inputs: Tensor, target: Tensor, optimizer, key) -> dict:
        device = inputs.device
        fmt = torch.channels_last if self.channels_last and inputs.dim() == 4 else \
            torch.contiguous_format
        static_x = torch.empty_like(inputs, memory_format=fmt)
        static_y = torch.empty_like(target)
        lrs = []
        for group in optimizer.param_groups:
            lr = group['lr']
            lrs.append([torch.tensor(float(lr), dtype=torch.float32, device=device), lr])
            group['lr'] = lrs[-1][0]  # the graph reads the lr from this tensor
        optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize(device)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                static_loss = self._step_body(static_x, static_y, optimizer)
        except Exception as e:
            raise RuntimeError(
                f'FastImageClassifier: capturing the training step as a CUDA graph failed '
                f'({type(e).__name__}: {e}). Something in the forward / loss / optimizer '
                f'synchronises with the host or is not capturable; set model.cuda_graph=False '
                f'to train eagerly') from e
        finally:
            for group, (_, lr) in zip(optimizer.param_groups, lrs):
                group['lr'] = lr
        self._graph_state = dict(graph=graph, x=static_x, y=static_y, loss=static_loss,
                                 lr=lrs, key=key, hyper=self._hyper_key(optimizer))
        print_log(f'FastImageClassifier: training step captured as a CUDA graph for batches '
                  f'of shape {key[0]}', logger='current')
        return self._graph_state

    def release_graph(self) -> None:
        """Drop the captured graph (and its memory pool); the next step re-captures."""
        self._graph_state = None

    def extra_repr(self) -> str:
        return (f'channels_last={self.channels_last}, autocast_dtype={self.autocast_dtype}, '
                f'cuda_graph={self.cuda_graph}, compile={self.compile_cfg}')
