# Copyright (c) mmbloodcell contributors. All rights reserved.
"""Plots, comparison tables and HTML reports of finished runs (``tools/analysis/``).

Not imported by ``import mmbloodcell`` (it needs matplotlib and registers nothing); import it
where it is used::

    from mmbloodcell.analysis import plot_training_curves, compare_markdown, write_report
"""
from .compare import REFERENCE, compare_markdown, summarize_run
from .describe import describe_config
from .logs import final_metrics, find_config, find_run_logs, latest_training_log
from .plots import (coco_pr_curves, plot_classification_samples, plot_confusion_matrix,
                    plot_detection_samples, plot_pr_curves, plot_roc_curve,
                    plot_training_curves, roc_curve, save_figure)
from .report import build_report, write_report
from .results import curve_figures, load_predictions, result_figures, save_figures

__all__ = [
    'REFERENCE', 'compare_markdown', 'summarize_run', 'describe_config', 'final_metrics',
    'find_config', 'find_run_logs', 'latest_training_log', 'coco_pr_curves',
    'plot_classification_samples', 'plot_confusion_matrix', 'plot_detection_samples',
    'plot_pr_curves', 'plot_roc_curve', 'plot_training_curves', 'roc_curve', 'save_figure',
    'build_report', 'write_report', 'curve_figures', 'load_predictions', 'result_figures',
    'save_figures'
]
