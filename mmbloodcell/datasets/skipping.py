"""Raise-or-skip bookkeeping shared by the datasets that check their inputs."""
from typing import Dict

from mmengine.logging import MMLogger

#: The values of ``on_error``: ``'raise'`` stops at a bad item with the fix, ``'skip'`` logs,
#: drops and counts it.
ON_ERROR_CHOICES = ('raise', 'skip')


def dataset_option_hint(key: str, value: str) -> str:
    """The ``--cfg-options`` that set ``key=value`` on the dataset of every dataloader, e.g.
    ``--cfg-options train_dataloader.dataset.on_error=skip val_dataloader... test_dataloader...``
    (``tools/train.py`` reads the first two, ``tools/test.py`` the last)."""
    return '--cfg-options ' + ' '.join(f'{split}_dataloader.dataset.{key}={value}'
                                       for split in ('train', 'val', 'test'))


class SkipOrRaiseMixin:
    """``on_error='raise'``: a bad item raises ``error_cls`` (message + ``skip_hint``);
    ``on_error='skip'``: it is logged and counted in ``self.skipped[kind]`` (a
    ``defaultdict(list)`` the dataset creates before loading)."""

    error_cls = ValueError
    #: How to drop bad items instead, said once at the end of every error.
    skip_hint = ("; or, to drop such items instead, set on_error='skip' on the dataset (on the "
                 f"command line: {dataset_option_hint('on_error', 'skip')})")

    def _fail(self, kind: str, message: str) -> None:
        if self.on_error == 'raise':
            raise self.error_cls(message + self.skip_hint)
        self.skipped[kind].append(message)
        MMLogger.get_current_instance().warning(
            f'{type(self).__name__}: skipping {message}')

    @property
    def skip_counts(self) -> Dict[str, int]:
        """Number of skipped items per kind."""
        return {k: len(v) for k, v in sorted(self.skipped.items())}

    @property
    def num_skipped(self) -> int:
        """Total number of skipped items."""
        return sum(len(v) for v in self.skipped.values())
