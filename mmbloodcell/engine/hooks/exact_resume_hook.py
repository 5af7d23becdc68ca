"""Resume an interrupted training exactly where its checkpoint left it."""
import random
from typing import Optional

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.runner import EpochBasedTrainLoop
from torch.utils.data import DataLoader

from mmbloodcell.registry import HOOKS

__all__ = ['ExactResumeHook', 'get_rng_state', 'set_rng_state']

META_KEY = 'exact_resume'


def get_rng_state() -> dict:
    """The states of Python's ``random``, NumPy's legacy ``np.random`` and torch's (CPU and
    every CUDA device) generators, as plain lists and tensors (``weights_only`` loadable)."""
    np_state = np.random.get_state()
    state = dict(
        python=random.getstate(),
        numpy=(np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]),
               float(np_state[4])),
        torch=torch.get_rng_state(),
    )
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`get_rng_state` returned."""
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state['numpy']
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state['torch'].cpu())
    if 'cuda' in state and torch.cuda.is_available():
        cuda_states = state['cuda']
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


class _SkipBatches:
    """A batch sampler that drops the first ``skip`` batches (index lists only: no image is
    loaded) of ``batch_sampler``'s epoch."""

    def __init__(self, batch_sampler, skip: int) -> None:
        self.batch_sampler = batch_sampler
        self.skip = skip

    @property
    def sampler(self):  # DistSamplerSeedHook looks for batch_sampler.sampler.set_epoch
        return getattr(self.batch_sampler, 'sampler', None)

    def __iter__(self):
        batches = iter(self.batch_sampler)
        for _ in range(self.skip):
            if next(batches, None) is None:
                return
        yield from batches

    def __len__(self) -> int:
        return max(len(self.batch_sampler) - self.skip, 0)


class _ResumedEpochLoader(DataLoader):
    """The training DataLoader for the rest of an interrupted epoch: the batches not reached
    yet, and, once its iterator exists (which draws a seed from torch's generator, as the
    interrupted epoch did), the generators set back to their state at the checkpoint."""

    def __init__(self, loader: DataLoader, skip: int, rng_state: Optional[dict]) -> None:
        kwargs = dict(
            num_workers=loader.num_workers, collate_fn=loader.collate_fn,
            pin_memory=loader.pin_memory, timeout=loader.timeout,
            worker_init_fn=loader.worker_init_fn,
            multiprocessing_context=loader.multiprocessing_context, generator=loader.generator,
            persistent_workers=False)
        if loader.num_workers > 0:
            kwargs['prefetch_factor'] = loader.prefetch_factor
        if getattr(loader, 'pin_memory_device', ''):
            kwargs['pin_memory_device'] = loader.pin_memory_device
        if hasattr(loader, 'in_order'):
            kwargs['in_order'] = loader.in_order
        super().__init__(loader.dataset, batch_sampler=_SkipBatches(loader.batch_sampler, skip),
                         **kwargs)
        self._rng_state = rng_state

    def __iter__(self):
        iterator = super().__iter__()
        if self._rng_state is not None:
            set_rng_state(self._rng_state)
            self._rng_state = None
        return iterator


@HOOKS.register_module()
class ExactResumeHook(Hook):
    """Make ``--resume`` continue a killed training as if it had never stopped.

    mmengine's resume restores weights, optimizer, schedulers and counters, but not the random
    generators, and restarts an interrupted epoch from its first batch. For an
    :class:`~mmengine.runner.EpochBasedTrainLoop` this hook

    1. stores the global generators' state and the epoch length in every checkpoint
       (``checkpoint['meta']['exact_resume']``), and sets them back on resume just before the
       first batch is drawn;
    2. for a checkpoint written mid-epoch (``iter = epoch * epoch_length + k``), skips the
       resumed epoch's first ``k`` batches at the sampler (index lists only): the same batches,
       as the sampler's order depends only on the seed and the epoch;
    3. saves the training generators before every validation and restores them after, so an
       epoch-end checkpoint written before validation (or by ``save_best``) resumes exactly too.

    With ``randomness=dict(seed=...)`` and ``num_workers=0`` the resumed run gives the weights
    and metrics of the uninterrupted one on CPU. Limits: workers (``num_workers > 0``) re-seed
    their own generators, so augmentations after a mid-epoch resume can differ (the data order
    is exact); distributed ranks all restore rank 0's state; a changed epoch length restarts
    the epoch from its first batch, with a warning. An ``IterBasedTrainLoop`` skips the trained
    batches itself; the generator state is not restored there. Priority ``LOW``: after
    ``DistSamplerSeedHook`` has set the sampler's epoch.
    """

    priority = 'LOW'

    def __init__(self) -> None:
        self._pending: Optional[dict] = None
        self._original_loader: Optional[DataLoader] = None
        self._val_rng: Optional[dict] = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        meta = checkpoint.setdefault('meta', {})
        # during validation (save_best) the training state is the one saved before it
        info = dict(rng=self._val_rng if self._val_rng is not None else get_rng_state())
        loop = getattr(runner, '_train_loop', None)
        if isinstance(loop, EpochBasedTrainLoop):
            info['epoch_length'] = len(self._original_loader or loop.dataloader)
        meta[META_KEY] = info

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not getattr(runner, '_resume', False):
            return  # load_from (fine-tuning) starts a new run: nothing to continue
        meta = checkpoint.get('meta', {})
        self._pending = dict(meta.get(META_KEY) or {}, epoch=meta.get('epoch'),
                             iter=meta.get('iter'))
        if META_KEY not in meta:
            runner.logger.warning(
                'ExactResumeHook: the checkpoint has no random-generator state (written '
                'without this hook); training resumes with the generators as seeded, so it '
                'will not repeat the uninterrupted run exactly')

    def before_train_epoch(self, runner) -> None:
        if self._pending is None:
            return
        pending, self._pending = self._pending, None
        loop = runner.train_loop
        rng = pending.get('rng')
        if not isinstance(loop, EpochBasedTrainLoop):
            runner.logger.info('ExactResumeHook: not an EpochBasedTrainLoop; the loop skips the '
                               'trained batches itself and the generator state is not restored')
            return
        length = len(loop.dataloader)
        done = 0
        if pending.get('epoch') is not None and pending.get('iter') is not None:
            done = int(pending['iter']) - int(pending['epoch']) * length
        saved_length = pending.get('epoch_length', length)
        if 0 < done < length and saved_length == length:
            runner.logger.info(
                f'ExactResumeHook: resuming epoch {runner.epoch + 1} at batch {done + 1} of '
                f'{length}: the {done} batch(es) trained before the checkpoint are skipped '
                f'(batch numbers in the log count from the resumed batch in this epoch)')
            self._original_loader = loop.dataloader
            loop.dataloader = _ResumedEpochLoader(loop.dataloader, done, rng)
            return
        if done != 0:
            runner.logger.warning(
                f'ExactResumeHook: cannot continue epoch {runner.epoch + 1} mid-way (checkpoint '
                f"at iteration {pending['iter']}, {done} batch(es) into the epoch; epoch length "
                f'{saved_length} then, {length} now): the epoch restarts from its first batch')
        if rng is not None:
            set_rng_state(rng)

    def after_train_epoch(self, runner) -> None:
        if self._original_loader is not None:
            runner.train_loop.dataloader = self._original_loader
            self._original_loader = None

    def before_val(self, runner) -> None:
        self._val_rng = get_rng_state()

    def after_val(self, runner) -> None:
        if self._val_rng is not None:
            set_rng_state(self._val_rng)
            self._val_rng = None
