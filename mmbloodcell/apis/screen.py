"""Smear screening: blood smear -> white cells -> probability of ALL, in one call.

:func:`run_screening` joins the two tasks: a BCCD detector finds the cells of each smear
(counts per class), every white-cell box is cropped with a margin, its cell segmented onto
black (:func:`~mmbloodcell.datasets.transforms.cell.segment_stained_cell`, the way C-NMC
presents a cell), and a C-NMC classifier (single model or ensemble) gives its probability of
ALL. A smear is flagged when any of its white cells is classified ALL.

A detector trained on BCCD and a classifier trained on C-NMC see different data (BCCD is a
640x480 smear photo of a different magnification and stain, with neutrophils, eosinophils,
monocytes and lymphocytes; C-NMC cells are segmented lymphocytes / lymphoblasts from another
microscope): the screening is the pipeline for models trained on one's own data, not a
diagnosis on BCCD.
"""
import os
import os.path as osp
from collections import OrderedDict
from typing import List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from mmengine.config import Config

from mmbloodcell.apis.gradcam import overlay_cam
from mmbloodcell.apis.inference import (NO_CHECKPOINT, _blank, _check_checkpoint, _inputs,
                                        _record, _tracked, _write, build_classifier,
                                        build_detector, detect_record, output_stems,
                                        set_prediction)
from mmbloodcell.datasets.transforms.cell import (cell_image_warnings, cell_on_black,
                                                  segment_stained_cell)
from mmbloodcell.visualization import draw_detections

__all__ = ['run_screening', 'find_wbc_class', 'crop_box', 'screening_html', 'WBC_NAMES']

#: black pixels added round every white-cell crop: a cell cut by the crop (at the smear's
#: edge) is on black all round, as C-NMC's are (``CropToCell`` needs a black frame border)
CROP_PAD = 4

#: class names taken for the white-cell class (compared case-insensitively)
WBC_NAMES = ('wbc', 'white blood cell', 'white_blood_cell', 'white-blood-cell', 'leukocyte',
             'leucocyte')


def find_wbc_class(classes: Sequence[str], config_name: str,
                   wbc_class: Optional[str] = None) -> int:
    """Index in ``classes`` of the white-cell class: ``wbc_class`` if given, else the first
    of :data:`WBC_NAMES`; both compared case-insensitively. None found is a
    :class:`ValueError` naming the config, its classes and ``--wbc-class``."""
    lower = [str(c).lower() for c in classes]
    wanted = [wbc_class.lower()] if wbc_class else list(WBC_NAMES)
    for name in wanted:
        if name in lower:
            return lower.index(name)
    looked = repr(wbc_class) if wbc_class else ', '.join(repr(n) for n in ('WBC', ) +
                                                         WBC_NAMES[1:])
    raise ValueError(f'{config_name}: the detector has no white-cell class {looked} '
                     f'(case-insensitive) among its classes {tuple(classes)}; name it with '
                     f'--wbc-class NAME (e.g. --wbc-class {classes[0] if classes else "WBC"}), '
                     f'or give a detector trained with a WBC class')


def crop_box(img: np.ndarray, bbox: Sequence[float],
             margin: float) -> Tuple[np.ndarray, List[int]]:
    """The crop of ``img`` around ``bbox`` (``[x1, y1, x2, y2]`` pixels) widened by
    ``margin`` times the box width (left and right) and height (top and bottom), clipped to
    the image. Returns the crop and its ``[x1, y1, x2, y2]`` (integers, right / bottom
    exclusive)."""
    h, w = img.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in bbox)
    mx, my = margin * (x2 - x1), margin * (y2 - y1)
    box = [int(np.clip(np.floor(x1 - mx), 0, w)), int(np.clip(np.floor(y1 - my), 0, h)),
           int(np.clip(np.ceil(x2 + mx), 0, w)), int(np.clip(np.ceil(y2 + my), 0, h))]
    box[2], box[3] = max(box[2], min(box[0] + 1, w)), max(box[3], min(box[1] + 1, h))
    return img[box[1]:box[3], box[0]:box[2]], box


def _check_config(config, position: str, scope: str, other: str) -> str:
    """The config's name; a missing file or another task's config is an error naming the
    position on the command line."""
    if isinstance(config, Config):
        cfg, name = config, getattr(config, 'filename', None) or '<Config>'
    elif not osp.isfile(str(config)):
        raise FileNotFoundError(f'{position} {config} not found: give the path of a config '
                                f'file (mmbloodcell screen DET_CONFIG DET_CKPT CLS_CONFIG '
                                f'CLS_CKPT SMEARS...)')
    else:
        cfg, name = Config.fromfile(config), str(config)
    found = cfg.get('default_scope')
    if found is not None and found != scope:
        raise ValueError(f'{name} is given as {position} but is a {other} config '
                         f'(default_scope={found!r}): the order is mmbloodcell screen '
                         f'DET_CONFIG DET_CKPT CLS_CONFIG CLS_CKPT SMEARS...; swap them')
    return name


def run_screening(det_config, det_checkpoint: str, cls_config, cls_checkpoint: Optional[str],
                  images: Union[str, Sequence[str]], out_dir: str,
                  all_thr: Optional[float] = None, margin: float = 0.15,
                  score_thr=None, wbc_class: Optional[str] = None, saliency: bool = False,
                  device: Optional[str] = None, backend: str = 'pytorch', batch_size: int = 8,
                  det_cfg_options: Optional[dict] = None,
                  cls_cfg_options: Optional[dict] = None,
                  progress: Optional[bool] = None, html: bool = True) -> dict:
    """Screen blood smears: detect and count the cells, classify every white cell.

    Per smear: the detector's boxes (``score_thr`` as the detector takes it; None: its
    default) and counts per class; every box of the white-cell class (:func:`find_wbc_class`)
    cropped by :func:`crop_box` with ``margin``, its cell segmented
    (:func:`~mmbloodcell.datasets.transforms.cell.segment_stained_cell`, centred on the
    box) and the rest set to black; the crops classified by the C-NMC classifier, whose
    decision threshold is ``all_thr``; the smear is flagged when any white cell has
    ``prob_all > all_thr``.

    Files written:

    - ``screening.json``: ``{"task": "screen", "detector": {config, checkpoint, score_thr,
      classes, wbc_class}, "classifier": {config, checkpoint, classes, members},
      "all_thr", "margin", "num_images", "num_failed", "num_flagged", "images": [...]}``; per
      smear (input order): ``image``, ``file_name``, ``status`` / ``error`` (as
      ``mmbloodcell detect``), ``width``, ``height``, ``counts`` (``{<class>: n, ...,
      "total": n}``), ``detections`` (every box, as ``detect``), ``annotated``, ``num_wbc``,
      ``max_prob_all`` (null without a classified white cell), ``flag`` (bool; null on
      error) and ``wbcs``: per white cell ``index``, ``bbox``, ``score``, ``crop_box`` (the
      crop in the smear), ``mask_fraction`` (of the crop inside the cell mask), ``crop``
      (the PNG: the crop, :data:`CROP_PAD` black pixels round it), ``prob_all``,
      ``label`` (1 = all when ``prob_all > all_thr``), ``label_name``, ``member_probs``
      (ensembles), ``saliency``, ``warnings``
      (:func:`~mmbloodcell.datasets.transforms.cell.cell_image_warnings`), ``status`` and
      ``error`` (a white cell that cannot be classified; the smear is still processed);
    - ``screening.csv``: ``image, <class>..., total, num_wbc, max_prob_all, flag, status,
      error``, one row per smear;
    - ``wbc.csv``: ``image, wbc, x1, y1, x2, y2, score, prob_all, label, label_name, crop,
      saliency, status, error`` plus ``prob_all_<member>`` per ensemble member, one row per
      white cell;
    - ``annotated/<stem>.png``: the smear with every box (``draw_detections``);
      ``crops/<stem>_wbc<i>.png``: white cell ``i`` on black (padded by
      :data:`CROP_PAD`), as classified; with
      ``saliency`` ``crops/<stem>_wbc<i>_gradcam.png`` (Grad-CAM of ALL blended over it);
    - ``screening.html`` (``html``): one self-contained page, images embedded
      (:func:`screening_html`).

    Args:
        det_config, det_checkpoint: A detection config and its checkpoint.
        cls_config, cls_checkpoint: A C-NMC classification config (an ensemble config too)
            and its checkpoint (``'-'`` for an ensemble config naming its members').
        images (str | Sequence[str]): Smear files and folders (``expand_images``).
        out_dir (str): Output folder (created).
        all_thr (float, optional): Decision threshold on ``prob_all``. Defaults to the
            classifier's (``BinaryClsHead.threshold``, 0.5 unless the config sets another).
        margin (float): Crop margin, a fraction of the box width / height. Defaults to 0.15.
        score_thr: The detector's ``score_thr``; None: the detector's default.
        wbc_class (str, optional): Name of the white-cell class (default: found by name).
        saliency (bool): Grad-CAM per crop. Defaults to False.
        device, backend: As ``build_detector`` / ``build_classifier``.
        batch_size (int): Crops per classifier forward pass.
        det_cfg_options, cls_cfg_options (dict, optional): Config overrides of either model.
        progress (bool, optional): Show a progress bar; None: when a folder was given.
        html (bool): Write ``screening.html``. Defaults to True.

    Returns:
        dict: The content of ``screening.json``.
    """
    if margin < 0:
        raise ValueError(f'margin must be >= 0 (a fraction of the box size), got {margin}')
    det_name = _check_config(det_config, 'DET_CONFIG', 'mmdet', 'classification')
    cls_name = _check_config(cls_config, 'CLS_CONFIG', 'mmpretrain', 'detection')
    _check_checkpoint(det_checkpoint, det_name)
    if cls_checkpoint is not None and str(cls_checkpoint).lower() not in NO_CHECKPOINT:
        _check_checkpoint(cls_checkpoint, cls_name)
    paths, progress = _inputs(images, progress)

    det_kwargs = dict(device=device, cfg_options=det_cfg_options)
    if score_thr is not None:
        det_kwargs['score_thr'] = score_thr
    detector = build_detector(det_config, det_checkpoint, backend, **det_kwargs)
    classes = list(detector.classes)
    wbc_label = find_wbc_class(classes, detector.config_name, wbc_class)
    clf = build_classifier(cls_config, cls_checkpoint, backend, device=device,
                           threshold=all_thr, cfg_options=cls_cfg_options)
    threshold = clf.threshold
    os.makedirs(osp.join(out_dir, 'annotated'), exist_ok=True)
    os.makedirs(osp.join(out_dir, 'crops'), exist_ok=True)

    records = []
    for path, stem in _tracked(list(zip(paths, output_stems(paths))), progress):
        rec = _record(path, width=None, height=None, counts=None, detections=[],
                      annotated=None, num_wbc=None, max_prob_all=None, flag=None, wbcs=[])
        records.append(rec)
        img = detect_record(detector, rec)
        if img is None:
            continue
        dets = rec['detections']
        rec['annotated'] = osp.join('annotated', f'{stem}.png')
        cv2.imwrite(osp.join(out_dir, rec['annotated']), draw_detections(img, dets, classes))
        _screen_wbcs(rec, img, stem, [d for d in dets if d['label'] == wbc_label], clf,
                     margin, saliency, batch_size, out_dir)

    doc = OrderedDict(
        task='screen',
        detector=OrderedDict(config=detector.config_name, checkpoint=detector.checkpoint,
                             score_thr=detector.score_thr, classes=classes,
                             wbc_class=classes[wbc_label]),
        classifier=OrderedDict(config=clf.config_name, checkpoint=clf.checkpoint,
                               classes=list(clf.classes), members=clf.member_names),
        all_thr=threshold, margin=float(margin), num_images=len(records),
        num_failed=sum(r['status'] != 'ok' for r in records),
        num_flagged=sum(bool(r['flag']) for r in records), images=records)
    names = clf.member_names
    smear_rows = [[r['image']] + [_blank((r['counts'] or {}).get(c)) for c in
                                  classes + ['total']] +
                  [_blank(r[k]) for k in ('num_wbc', 'max_prob_all', 'flag', 'status',
                                          'error')] for r in records]
    wbc_rows = [[r['image'], c['index']] + list(c['bbox']) +
                [_blank(c[k]) for k in ('score', 'prob_all', 'label', 'label_name', 'crop',
                                        'saliency', 'status', 'error')] +
                [_blank((c['member_probs'] or {}).get(n)) for n in names]
                for r in records for c in r['wbcs']]
    _write(out_dir, 'screening.json', doc, [
        ('screening.csv', ['image'] + classes + ['total', 'num_wbc', 'max_prob_all', 'flag',
                                                 'status', 'error'], smear_rows),
        ('wbc.csv', ['image', 'wbc', 'x1', 'y1', 'x2', 'y2', 'score', 'prob_all', 'label',
                     'label_name', 'crop', 'saliency', 'status', 'error'] +
         [f'prob_all_{n}' for n in names], wbc_rows)])
    if html:
        with open(osp.join(out_dir, 'screening.html'), 'w', encoding='utf-8') as f:
            f.write(screening_html(doc, out_dir))
    return doc


def _screen_wbcs(rec: dict, img: np.ndarray, stem: str, wbc_dets: List[dict], clf,
                 margin: float, saliency: bool, batch_size: int, out_dir: str) -> None:
    """Crop, segment and classify the white cells of one smear into ``rec['wbcs']``; sets
    ``num_wbc``, ``max_prob_all`` and ``flag``."""
    pending = []  # (wbc record, masked crop)
    for i, det in enumerate(wbc_dets):
        crop, box = crop_box(img, det['bbox'], margin)
        wbc = OrderedDict(index=i, bbox=[round(float(v), 2) for v in det['bbox']],
                          score=det['score'], crop_box=box, mask_fraction=None, crop=None,
                          prob_all=None, label=None, label_name=None, member_probs=None,
                          saliency=None, warnings=[], status='ok', error='')
        rec['wbcs'].append(wbc)
        x1, y1, x2, y2 = det['bbox']
        mask = segment_stained_cell(crop, ((x1 + x2) / 2 - box[0], (y1 + y2) / 2 - box[1]))
        wbc['mask_fraction'] = round(float(mask.mean()), 4)
        if not mask.any():
            wbc.update(status='error', error='no stained cell found in the box (its crop has '
                       'no pixel above the saturation threshold), not classified')
            continue
        cell = cv2.copyMakeBorder(cell_on_black(crop, mask), CROP_PAD, CROP_PAD, CROP_PAD,
                                  CROP_PAD, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        wbc['crop'] = osp.join('crops', f'{stem}_wbc{i}.png')
        cv2.imwrite(osp.join(out_dir, wbc['crop']), cell)
        wbc['warnings'] = cell_image_warnings(cell)
        pending.append((wbc, cell))
    results = clf.predict([p[1] for p in pending], saliency=saliency, batch_size=batch_size) \
        if pending else []
    for (wbc, cell), res in zip(pending, results):
        if not set_prediction(wbc, res, clf):
            continue
        if res.get('cam') is not None:
            wbc['saliency'] = osp.join('crops', f'{stem}_wbc{wbc["index"]}_gradcam.png')
            cv2.imwrite(osp.join(out_dir, wbc['saliency']), overlay_cam(cell, res['cam']))
    probs = [w['prob_all'] for w in rec['wbcs'] if w['prob_all'] is not None]
    rec.update(num_wbc=len(rec['wbcs']), max_prob_all=max(probs) if probs else None,
               flag=any(w['label'] == 1 for w in rec['wbcs']))


def _img_tag(path: str, alt: str, width: Optional[int] = None) -> str:
    """An ``<img>`` of a PNG file written by :func:`run_screening`, its bytes embedded."""
    from mmbloodcell.analysis.report import _esc, png_data_uri
    if not osp.isfile(path):
        return f'<p class="note">{_esc(alt)}: {_esc(path)} could not be read</p>'
    with open(path, 'rb') as f:
        png = f.read()
    size = f' width="{int(width)}"' if width else ''
    return f'<img alt="{_esc(alt)}"{size} src="{png_data_uri(png)}">'


def screening_html(doc: dict, out_dir: str) -> str:
    """A self-contained HTML page of a :func:`run_screening` result (``doc``, its files in
    ``out_dir``): a table of the smears, then per smear its annotated image, counts, flag and
    white-cell crops with ``prob_all`` (and Grad-CAM); images as PNG data URIs, the CSS of
    :mod:`mmbloodcell.analysis.report`."""
    from mmbloodcell.analysis.report import _CSS, _esc, _table
    classes = doc['detector']['classes']
    thr = doc['all_thr']
    rows = [(r['file_name'], *[(r['counts'] or {}).get(c, '-') for c in classes],
             '-' if r['num_wbc'] is None else r['num_wbc'],
             '-' if r['max_prob_all'] is None else r['max_prob_all'],
             {True: 'ALL suspected', False: 'no', None: '-'}[r['flag']],
             r['status'] + (f": {r['error']}" if r['error'] else ''))
            for r in doc['images']]
    parts = [f'<h2>Smears</h2>\n<p class="meta">Flag: any white cell with prob_all &gt; '
             f'{_esc(thr)} (the classifier&#39;s decision threshold).</p>\n' +
             _table(rows, ('smear', *classes, 'WBCs', 'max prob_all', 'flag', 'status'))]
    for r in doc['images']:
        head = f'<h2 id="{_esc(r["file_name"])}">{_esc(r["file_name"])}</h2>'
        if r['status'] != 'ok':
            parts.append(f'{head}\n<p class="note">error: {_esc(r["error"])}</p>')
            continue
        flag = 'ALL suspected' if r['flag'] else 'not flagged'
        counts = ', '.join(f'{c}: {r["counts"][c]}' for c in classes)
        cells = []
        for w in r['wbcs']:
            what = (f'WBC {w["index"]} (det {w["score"]:.3f}): ' +
                    (f'prob_all {w["prob_all"]:.4f} &rarr; {_esc(w["label_name"])}'
                     if w['status'] == 'ok' else f'error: {_esc(w["error"])}'))
            imgs = ''.join(_img_tag(osp.join(out_dir, p), f'{r["file_name"]} WBC '
                                    f'{w["index"]} {kind}', 160)
                           for p, kind in ((w['crop'], 'crop'), (w['saliency'], 'Grad-CAM'))
                           if p)
            cells.append(f'<figure style="display:inline-block">{imgs}'
                         f'<figcaption>{what}</figcaption></figure>')
        parts.append(
            f'{head}\n<p><b>{_esc(flag)}</b> &middot; {_esc(counts)} &middot; '
            f'{r["num_wbc"]} WBC(s), max prob_all '
            f'{"-" if r["max_prob_all"] is None else r["max_prob_all"]}</p>\n'
            f'<figure>{_img_tag(osp.join(out_dir, r["annotated"]), r["file_name"])}'
            f'<figcaption>Detections (every box).</figcaption></figure>\n' +
            ('\n'.join(cells) if cells else '<p class="meta">No white cell detected.</p>'))
    det, cls = doc['detector'], doc['classifier']
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<title>mmbloodcell screening</title><style>{_CSS}</style></head><body>'
            f'<h1>Smear screening</h1><p class="meta">detector {_esc(det["config"])} '
            f'({_esc(det["checkpoint"])}) &middot; classifier {_esc(cls["config"])} '
            f'({_esc(cls["checkpoint"])}) &middot; {doc["num_images"]} smear(s), '
            f'{doc["num_failed"]} failed, {doc["num_flagged"]} flagged</p>'
            '<p class="note">A research tool, not a diagnosis: the classifier answers for '
            'cells like those it was trained on.</p>\n' + '\n'.join(parts) +
            '\n</body></html>\n')
