"""The papers' values (mmbloodcell/studies/*.yaml) against every config that claims to follow
them, and the check itself."""
import os.path as osp

import pytest
from mmengine.config import Config

from mmbloodcell.studies import (CHECKS, check_config, config_value, find_table, load_studies,
                                 row_checks)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
STUDIES = load_studies()
ROWS = [(sid, tid, row) for sid, s in STUDIES.items() for tid, t in s['tables'].items()
        for row in t['rows'] if row.get('kind', 'config') == 'config']


def test_every_study_and_table_is_there():
    assert set(STUDIES) >= {'fhl', 'backbones', 'frozen-efficientnet'}
    tables = {t for s in STUDIES.values() for t in s['tables']}
    assert tables >= {'fhl-table2', 'fhl-table3', 'backbones-table1', 'frozen-efficientnet'}
    for study in STUDIES.values():
        assert osp.isfile(osp.join(REPO, '..', 'shared', 'papers', study['paper']['file'])) or \
            not osp.isdir(osp.join(REPO, '..', 'shared', 'papers'))
        for element in study['method']:
            assert element['element'] and element['paper'] and element['ours'], element


@pytest.mark.parametrize('study_id,table_id,row', ROWS,
                         ids=[f'{t}/{r["id"]}' for _, t, r in ROWS])
def test_paper_config_follows_the_paper(study_id, table_id, row):
    cfg = Config.fromfile(osp.join(REPO, row['config']))
    assert check_config(cfg, row_checks(STUDIES[study_id], row), row['config']) == []


def test_the_check_fails_when_a_value_changes():
    study, table = find_table('fhl-table2')
    row = table['rows'][0]
    cfg = Config.fromfile(osp.join(REPO, row['config']))
    checks = row_checks(study, row)
    assert check_config(cfg, checks) == []
    cfg.merge_from_dict({'optim_wrapper.optimizer.lr': 2e-5, 'train_dataloader.batch_size': 16})
    problems = check_config(cfg, checks)
    assert len(problems) == 2
    assert any('lr' in p and '2e-05' in p and '1e-05' in p for p in problems), problems
    assert any('batch_size' in p and '16' in p for p in problems), problems
    # a betas or loss change is caught too
    cfg.merge_from_dict({'optim_wrapper.optimizer.betas': (0.9, 0.999),
                         'model.head.loss': dict(type='HingeLoss')})
    problems = check_config(cfg, checks)
    assert any(p.split(': ', 1)[1].startswith('betas') for p in problems), problems
    assert any('losses' in p and 'HingeLoss' in p for p in problems), problems


def test_the_check_sees_a_missing_augmentation():
    study, table = find_table('backbones-table1')
    row = table['rows'][0]
    cfg = Config.fromfile(osp.join(REPO, row['config']))
    pipeline = [t for t in cfg.train_dataloader.dataset.pipeline if t['type'] != 'GaussianNoise']
    cfg.merge_from_dict({'train_dataloader.dataset.pipeline': pipeline})
    problems = check_config(cfg, row_checks(study, row))
    assert problems and 'GaussianNoise' in problems[0]


def test_check_values():
    cfg = Config.fromfile(osp.join(REPO, 'configs/fhl_study/densenet201_focal_table2_cnmc.py'))
    assert config_value(cfg, 'optimizer') == 'Adam'
    assert config_value(cfg, 'input_size') == [224, 224]
    assert config_value(cfg, 'losses') == ['BinaryFocalLoss']
    assert config_value(cfg, 'backbone') == 'DenseNet-201'
    assert 'CLAHE' in config_value(cfg, 'train_transforms')  # inside RandomApply
    assert config_value(cfg, 'model.head.hidden_channels') == 256
    assert config_value(cfg, 'model.no_such_key') is None
    with pytest.raises(KeyError, match='unknown check'):
        config_value(cfg, 'learning_rate')
    assert set(CHECKS) >= {'optimizer', 'lr', 'weight_decay', 'betas', 'epochs', 'batch_size',
                           'input_size', 'losses'}


def test_table3_numbers_give_back_the_papers_confusion_matrix():
    """Table 3's accuracy, precision and recall on the 1,219 / 648 prelim cells fix the matrix;
    its F1 is the F1 of ALL (88.82), not the weighted F1 (83.45)."""
    from mmbloodcell.evaluation.metrics.binary_metrics import binary_scores
    import numpy as np
    _, table = find_table('fhl-table3')
    paper = table['rows'][0]['paper']
    tp = round(paper['binary/recall'] / 100 * 1219)
    fp = round(tp / (paper['binary/precision'] / 100)) - tp
    cm = np.array([[648 - fp, fp], [1219 - tp, tp]])
    scores = binary_scores(cm)
    assert scores['accuracy'] * 100 == pytest.approx(paper['binary/accuracy'], abs=0.01)
    assert scores['f1'] * 100 == pytest.approx(paper['binary/f1'], abs=0.015)
    assert scores['weighted_f1'] * 100 == pytest.approx(83.45, abs=0.01)


def test_docs_paper_protocols_is_up_to_date():
    from mmbloodcell.studies import protocols_markdown
    with open(osp.join(REPO, 'docs', 'paper_protocols.md'), encoding='utf-8') as f:
        assert f.read() == protocols_markdown(), (
            'docs/paper_protocols.md is out of date: regenerate it with the command at its top')
