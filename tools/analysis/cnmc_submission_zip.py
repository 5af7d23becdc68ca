"""Pack a C-NMC 2019 prediction file into the submission.zip that CodaLab takes.

    python tools/analysis/cnmc_submission_zip.py WORK_DIR/RUN/isbi_valid.predict
        [--out WORK_DIR/RUN/submission.zip]

The input is the file ``BinaryClassificationMetric(submission_file='isbi_valid.predict')``
writes: one line per test image in the order of the numbered file names (``1.bmp``,
``2.bmp``, ...), ``1`` for all and ``0`` for hem. The zip holds it as ``isbi_valid.predict``
(the name the challenge expects, whatever the input's name) and is written atomically, by
default beside the input.
"""
import argparse
import io
import os.path as osp
import sys
import zipfile

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmbloodcell.utils.fileio import atomic_write_bytes  # noqa: E402

MEMBER = 'isbi_valid.predict'


def read_predictions(path: str) -> str:
    """The text of a prediction file, checked: every line ``0`` or ``1``, at least one."""
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{path} not found: write it with the test config\'s evaluator, e.g. python '
            f'tools/test.py CONFIG CHECKPOINT --cfg-options test_dataloader.dataset.split='
            f'final_test test_evaluator.submission_file=isbi_valid.predict')
    with open(path) as f:
        lines = f.read().splitlines()
    if not lines:
        raise ValueError(f'{path} is empty; expected one line (0 or 1) per test image')
    for i, line in enumerate(lines, start=1):
        if line.strip() not in ('0', '1'):
            raise ValueError(f'{path} line {i}: {line!r} is not 0 (hem) or 1 (all); rewrite '
                             f'the file with BinaryClassificationMetric(submission_file=...)')
    return ''.join(line.strip() + '\n' for line in lines)


def write_submission_zip(predict_file: str, out: str = None) -> str:
    """Write ``out`` (default ``submission.zip`` beside ``predict_file``) holding the checked
    predictions as ``isbi_valid.predict``; returns its path."""
    text = read_predictions(predict_file)
    out = out or osp.join(osp.dirname(predict_file), 'submission.zip')
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w', zipfile.ZIP_DEFLATED) as z:
        z.writestr(MEMBER, text)
    atomic_write_bytes(buf.getvalue(), out)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('predict_file', help='the prediction file (isbi_valid.predict)')
    parser.add_argument('--out', help='the zip (default: submission.zip beside PREDICT_FILE)')
    args = parser.parse_args(argv)
    out = write_submission_zip(args.predict_file, args.out)
    print(f'wrote {out} ({MEMBER}); upload it to the C-NMC 2019 CodaLab challenge')
    return out


if __name__ == '__main__':
    main()
