"""The ``mmbloodcell`` command (console script; ``tools/infer.py`` is the same as a script).

::

    mmbloodcell detect CONFIG CKPT IMAGES... --out DIR [--score-thr T] [--device cpu]
    mmbloodcell classify CONFIG CKPT IMAGES... --out DIR [--threshold T] [--saliency]
                         [--batch-size 8] [--device cpu]
    (both also take --backend pytorch|onnxruntime, --data-root DIR and
    --cfg-options key=value ...; with --backend onnxruntime CKPT is the .onnx file)
    mmbloodcell export CONFIG CKPT --format onnx [--out FILE] [--opset 18]
                         [--exporter dynamo|torchscript] [--cfg-options key=value ...]
    mmbloodcell screen DET_CONFIG DET_CKPT CLS_CONFIG CLS_CKPT SMEARS... --out DIR
                         [--all-thr T] [--margin 0.15] [--score-thr T] [--wbc-class NAME]
                         [--saliency] [--batch-size 8] [--device cpu] [--backend pytorch]
                         [--det-cfg-options k=v ...] [--cls-cfg-options k=v ...]
    mmbloodcell reproduce TABLE [--rows ROW ...] [--work-dir work_dirs/reproduce]
                         [--data-root DIR] [--dry-run] [--smoke] [--from-scratch]
                         [--launcher none|pytorch|slurm] [--gpus N] [--cfg-options k=v ...]
    mmbloodcell reproduce --list
    mmbloodcell crossval CONFIG [--folds 5] [--seed 0] [--work-dir DIR] [--data-root DIR]
                         [--smoke] [--from-scratch] [--cfg-options key=value ...]

``IMAGES`` are image files and / or folders (searched recursively, in natural order). The files
written are those of :func:`mmbloodcell.apis.inference.run_detection` and
:func:`~mmbloodcell.apis.inference.run_classification`; for an ensemble config CKPT may be
``-``; ``screen`` writes those of :func:`mmbloodcell.apis.screen.run_screening`. An
unreadable image gets ``status=error`` and its reason, the others are processed.
Exit status: 0 when at least one image was processed, 1 when none could be, 2 for a usage
error.
"""
import argparse
import sys
from typing import List, Optional

__all__ = ['main', 'build_parser']


def build_parser() -> argparse.ArgumentParser:
    from mmengine.config import DictAction

    parser = argparse.ArgumentParser(
        prog='mmbloodcell',
        description='Blood-cell detection (BCCD) and leukemia classification (C-NMC) on '
        'image files with trained mmbloodcell models')
    sub = parser.add_subparsers(dest='command',
                                metavar='{detect,classify,screen,export,reproduce,crossval}')
    sub.required = True

    def run_options(p):
        """--out, --device and the progress bar of the verbs that run models on images."""
        p.add_argument('--out', '-o', required=True, help='output folder (created)')
        p.add_argument('--device', default=None,
                       help="'cpu', 'cuda:0', ... (default: the GPU if any, else the CPU)")
        p.add_argument('--progress', dest='progress', action='store_true', default=None,
                       help='show a progress bar (default: when a folder is given)')
        p.add_argument('--no-progress', dest='progress', action='store_false',
                       help='never show a progress bar')

    def common(p, ckpt_help):
        p.add_argument('config', help='the config the model was trained with')
        p.add_argument('checkpoint', help=ckpt_help)
        p.add_argument('images', nargs='+', help='image files and / or folders')
        run_options(p)
        p.add_argument('--data-root', help="the config's dataset folder, when the model's "
                       'class names are read from the dataset (as tools/train.py --data-root)')
        p.add_argument('--cfg-options', nargs='+', action=DictAction,
                       help='override config settings, key=value pairs, e.g. '
                       'model.members.0.checkpoint=work_dirs/a/best.pth')
        p.add_argument('--backend', choices=['pytorch', 'onnxruntime'], default='pytorch',
                       help='pytorch: CKPT is the .pth checkpoint; onnxruntime: CKPT is the '
                       '.onnx file of `mmbloodcell export` (CPU; threads: '
                       'MMBLOODCELL_ORT_THREADS)')

    det = sub.add_parser('detect', help='count and draw RBC / WBC / platelets',
                         description='Detect blood cells; write detections.json, counts.csv '
                         'and annotated/<image>.png')
    common(det, 'trained detector checkpoint (.pth)')
    det.add_argument('--score-thr', type=float, default=None,
                     help='keep boxes with score >= this, for every class (default: the '
                     "per-class thresholds calibrated on the validation split, in the "
                     "checkpoint's meta, else 0.3)")
    det.add_argument('--no-annotated', action='store_true',
                     help='do not write the annotated images')

    cls = sub.add_parser('classify', help='probability of ALL per cell image',
                         description='Classify C-NMC cells (hem / all); write '
                         'predictions.json, predictions.csv, patients.csv and Grad-CAM images')
    common(cls, "trained classifier checkpoint (.pth); for an ensemble config '-' (or "
           "'none') when the config names its members' checkpoints")
    cls.add_argument('--threshold', type=float, default=None,
                     help="decision threshold on the probability of ALL (default: the "
                     "model's, e.g. BinaryClsHead.threshold)")
    cls.add_argument('--saliency', action='store_true',
                     help='write a Grad-CAM map (last conv stage) per image: '
                     '<image>_gradcam.png')
    cls.add_argument('--batch-size', type=int, default=8, help='images per forward pass')

    scr = sub.add_parser('screen', help='smears -> white cells -> probability of ALL',
                         description='Detect and count the cells of each smear, segment '
                         'every white cell onto black and classify it (hem / all); write '
                         'screening.json, screening.csv, wbc.csv, screening.html, '
                         'annotated/ and crops/')
    scr.add_argument('det_config', help='the detection config (BCCD-like, with a WBC class)')
    scr.add_argument('det_checkpoint', help='its trained checkpoint')
    scr.add_argument('cls_config', help='the C-NMC classification config (or an ensemble)')
    scr.add_argument('cls_checkpoint', help="its trained checkpoint; '-' for an ensemble "
                     "config naming its members' checkpoints")
    scr.add_argument('images', nargs='+', help='smear image files and / or folders')
    run_options(scr)
    scr.add_argument('--all-thr', type=float, default=None,
                     help="decision threshold on a white cell's probability of ALL; a smear "
                     "is flagged when any is above it (default: the classifier's, 0.5 "
                     "unless its config sets another)")
    scr.add_argument('--margin', type=float, default=0.15,
                     help='crop margin round each WBC box, a fraction of its size '
                     '(default 0.15)')
    scr.add_argument('--score-thr', type=float, default=None,
                     help="the detector's score threshold (default: the detector's)")
    scr.add_argument('--wbc-class', help='the white-cell class name (default: WBC, found '
                     'case-insensitively)')
    scr.add_argument('--saliency', action='store_true',
                     help='write a Grad-CAM map per white cell: '
                     'crops/<smear>_wbc<i>_gradcam.png')
    scr.add_argument('--batch-size', type=int, default=8, help='crops per forward pass')
    scr.add_argument('--backend', choices=['pytorch', 'onnxruntime'], default='pytorch',
                     help='inference backend of both models; onnxruntime: the CKPTs are the '
                     '.onnx files of mmbloodcell export '
                     '(default: pytorch)')
    scr.add_argument('--det-cfg-options', nargs='+', action=DictAction,
                     help="override the detection config's settings, key=value pairs")
    scr.add_argument('--cls-cfg-options', nargs='+', action=DictAction,
                     help="override the classification config's settings, key=value pairs")

    exp = sub.add_parser('export', help='export a trained model to ONNX (CPU deployment)',
                         description='Export a trained one-stage detector or classifier to '
                         'one .onnx file (network forward; metadata for the numpy '
                         'post-processor), checked against PyTorch with onnxruntime; see '
                         'docs/deployment.md')
    exp.add_argument('config', help='the config the model was trained with')
    exp.add_argument('checkpoint', help="trained checkpoint (.pth); for an ensemble config '-' "
                     "when the config names its members' checkpoints")
    exp.add_argument('--format', choices=['onnx'], default='onnx', help='output format')
    exp.add_argument('--out', '-o', help='the .onnx file (default: CKPT with .onnx)')
    exp.add_argument('--opset', type=int, default=18, help='ONNX opset (default 18)')
    exp.add_argument('--exporter', choices=['dynamo', 'torchscript'], default='dynamo',
                     help='torch.onnx.export(dynamo=True) (default) or the TorchScript '
                     'exporter (dynamo=False)')
    exp.add_argument('--cfg-options', nargs='+', action=DictAction,
                     help='override config settings, key=value pairs')

    rep = sub.add_parser('reproduce', help="re-run a study's results table",
                         description="Train and test every row of a study's table, then "
                         "write <work-dir>/<table>/table.md and table.json (ours beside the "
                         "paper's numbers). Run from the repository root.")
    rep.add_argument('table', nargs='?', help='the table, e.g. fhl-table2 (see --list)')
    rep.add_argument('--list', action='store_true', help='list the tables and exit')
    rep.add_argument('--rows', nargs='+', help='run only these rows (and what they need)')
    rep.add_argument('--work-dir', default='work_dirs/reproduce',
                     help='rows go to <work-dir>/<table>/<row> (default: %(default)s)')
    rep.add_argument('--data-root', help='the dataset folder of every row')
    rep.add_argument('--dry-run', action='store_true', help='print the commands only')
    rep.add_argument('--smoke', action='store_true',
                     help='one short epoch per row on a few small images (proves the path)')
    rep.add_argument('--from-scratch', action='store_true',
                     help='no pretrained weights (the table says so)')
    rep.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none',
                     help='none: in this process; pytorch: tools/dist_train.sh; slurm: srun')
    rep.add_argument('--gpus', type=int, default=1, help='processes per row with --launcher')
    rep.add_argument('--cfg-options', nargs='+', action=DictAction,
                     help='override config settings of every row, key=value pairs, e.g. '
                     'train_cfg.max_epochs=2')
    rep.add_argument('--root', help='the mmbloodcell checkout (default: the current folder)')

    cv = sub.add_parser('crossval', help='patient-wise k-fold cross-validation of a C-NMC config',
                        description='Train and test a C-NMC config on K folds of the training '
                        'patients (stratified by class); write <work-dir>/crossval.md and '
                        '.json with each fold and the mean +- std. Run from the repository '
                        'root.')
    cv.add_argument('config', help='a C-NMC classification config')
    cv.add_argument('--folds', type=int, default=5, help='number of folds (default 5)')
    cv.add_argument('--seed', type=int, default=0, help='seed of the fold assignment')
    cv.add_argument('--work-dir', help='default: work_dirs/crossval/<config name>')
    cv.add_argument('--data-root', help='the C-NMC folder (as tools/train.py --data-root)')
    cv.add_argument('--smoke', action='store_true', help='one short epoch per fold')
    cv.add_argument('--from-scratch', action='store_true', help='no pretrained weights')
    cv.add_argument('--cfg-options', nargs='+', action=DictAction,
                    help='override config settings of every fold, key=value pairs')
    cv.add_argument('--root', help='the mmbloodcell checkout (default: the current folder)')
    return parser


def _reproduce(args) -> int:
    from mmbloodcell.apis.reproduce import ReproduceError, list_tables, reproduce
    from mmbloodcell.studies import find_table
    if args.list or not args.table:
        for table_id in list_tables():
            study, table = find_table(table_id)
            print(f"{table_id:22s} {table['title']} ({len(table['rows'])} rows)")
        return 0 if args.list else 2
    try:
        doc = reproduce(args.table, work_dir=args.work_dir, rows=args.rows,
                        data_root=args.data_root, dry_run=args.dry_run, smoke=args.smoke,
                        from_scratch=args.from_scratch, launcher=args.launcher,
                        gpus=args.gpus, root=args.root, cfg_options=args.cfg_options)
    except (KeyError, ReproduceError) as e:
        print(f'mmbloodcell reproduce: error: {e}', file=sys.stderr)
        return 2
    skipped = [r['id'] for r in doc['rows'] if r['status'] == 'skipped']
    if skipped:
        print(f'mmbloodcell reproduce: rows not run: {", ".join(skipped)} (see table.md)',
              file=sys.stderr)
    return 0


def _export(args) -> int:
    from mmbloodcell.apis.export import export_onnx
    try:
        res = export_onnx(args.config, args.checkpoint, args.out, opset=args.opset,
                          exporter=args.exporter, cfg_options=args.cfg_options)
    except (FileNotFoundError, ValueError) as e:
        print(f'mmbloodcell export: error: {e}', file=sys.stderr)
        return 2
    meta = res['metadata']
    print(f"{res['out_file']}: {meta['task']} model, outputs {', '.join(meta['outputs'])}; "
          f"onnxruntime vs PyTorch max abs difference {res['max_abs_diff']:.2e}")
    return 0


def _summary(doc: dict, out: str, files: List[str]) -> str:
    failed = [r for r in doc['images'] if r['status'] != 'ok']
    warned = [r for r in doc['images'] if r.get('warnings')]
    lines = [f"{doc['num_images']} image(s): {doc['num_images'] - len(failed)} processed, "
             f'{len(failed)} failed' + (f', {len(warned)} with warnings' if warned else '') +
             f'; results in {out} ({", ".join(files)})']
    if isinstance(doc.get('score_thr'), dict):
        lines.append('score thresholds: ' + ', '.join(
            f'{c} {t:g}' for c, t in doc['score_thr'].items()) +
            f" ({doc.get('score_thr_source', 'given')})")
    for r in failed:
        lines.append(f"  {r['image']}: {r['error']}")
    for r in warned:
        lines.append(f"  warning: {r['image']}: {'; '.join(r['warnings'])}")
    return '\n'.join(lines)


def _screen(args) -> int:
    from mmbloodcell.apis.screen import run_screening
    from mmbloodcell.apis.tool_config import UsageError
    try:
        doc = run_screening(args.det_config, args.det_checkpoint, args.cls_config,
                            args.cls_checkpoint, args.images, args.out, all_thr=args.all_thr,
                            margin=args.margin, score_thr=args.score_thr,
                            wbc_class=args.wbc_class, saliency=args.saliency,
                            device=args.device, backend=args.backend,
                            batch_size=args.batch_size, det_cfg_options=args.det_cfg_options,
                            cls_cfg_options=args.cls_cfg_options, progress=args.progress)
    except (FileNotFoundError, ValueError, UsageError) as e:
        print(f'mmbloodcell screen: error: {e}', file=sys.stderr)
        return 2
    print(_summary(doc, args.out, ['screening.json', 'screening.csv', 'wbc.csv',
                                   'screening.html', 'annotated/', 'crops/']))
    wbcs = [w for r in doc['images'] for w in r['wbcs']]
    failed = [w for w in wbcs if w['status'] != 'ok']
    print(f"{len(wbcs)} white cell(s), {len(failed)} not classified; {doc['num_flagged']} "
          f"smear(s) flagged (a white cell with prob_all > {doc['all_thr']})")
    return 0 if doc['num_failed'] < doc['num_images'] else 1


def main(argv: Optional[List[str]] = None) -> int:
    """Run ``mmbloodcell``; returns the exit status (see the module docstring)."""
    args = build_parser().parse_args(argv)
    if args.command == 'reproduce':
        return _reproduce(args)
    if args.command == 'screen':
        return _screen(args)
    if args.command == 'crossval':
        from mmbloodcell.apis.reproduce import ReproduceError, crossval
        try:
            crossval(args.config, num_folds=args.folds, work_dir=args.work_dir, seed=args.seed,
                     data_root=args.data_root, smoke=args.smoke, from_scratch=args.from_scratch,
                     cfg_options=args.cfg_options, root=args.root)
        except ReproduceError as e:
            print(f'mmbloodcell crossval: error: {e}', file=sys.stderr)
            return 2
        return 0

    if args.command == 'export':
        return _export(args)

    from mmbloodcell.apis.inference import run_classification, run_detection
    from mmbloodcell.apis.tool_config import UsageError

    try:
        if args.data_root:
            args.cfg_options = dict(args.cfg_options or {}, data_root=args.data_root)
        if args.command == 'detect':
            doc = run_detection(args.config, args.checkpoint, args.images, args.out,
                                score_thr=args.score_thr, device=args.device,
                                cfg_options=args.cfg_options, progress=args.progress,
                                save_annotated=not args.no_annotated,
                                backend=args.backend)
            files = ['detections.json', 'counts.csv']
            if not args.no_annotated:
                files.append('annotated/')
        else:
            doc = run_classification(args.config, args.checkpoint, args.images, args.out,
                                     threshold=args.threshold, saliency=args.saliency,
                                     device=args.device, cfg_options=args.cfg_options,
                                     batch_size=args.batch_size, progress=args.progress,
                                     backend=args.backend)
            files = ['predictions.json', 'predictions.csv']
            if doc['patients']:
                files.append('patients.csv')
            if args.saliency:
                files.append('*_gradcam.png')
    except (FileNotFoundError, ValueError, UsageError) as e:
        print(f'mmbloodcell {args.command}: error: {e}', file=sys.stderr)
        return 2
    print(_summary(doc, args.out, files))
    return 0 if doc['num_failed'] < doc['num_images'] else 1


if __name__ == '__main__':
    sys.exit(main())
