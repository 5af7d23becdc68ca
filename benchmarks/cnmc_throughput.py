"""Training and inference throughput of the C-NMC classifiers, and the equivalence of the fast
training paths (issue 8; issue 5's GPU measurements).

    python benchmarks/cnmc_throughput.py [--models M,...] [--variants V,...|auto]
        [--batch 32] [--infer-batches 32,256] [--size 224] [--iters 50] [--warmup 3]
        [--windows 3] [--window-s 0.25] [--device cuda|cpu] [--tf32 on|off]
        [--time-budget-s 200] [--item-timeout-s 60] [--compile-timeout-s 120]
        [--equivalence [--equiv-variants fp32,graph,fastest] [--equiv-steps 30]]
        [--out results.json] [--md results.md]

Models: densenet201, efficientnet-b2 (mmpretrain backbones) and efficientnet-b2-timm (timm's
implementation), each as its C-NMC config builds it (BinaryClsHead + FocalHingeLoss, Adam
lr 1e-5, betas (0.7, 0.999)), without pretrained weights. Variants: ``fp32`` (stock
mmpretrain + mmengine OptimWrapper), ``amp-bf16`` / ``amp-fp16`` (mmengine AmpOptimWrapper),
and ``+``-joined sets of ``cl`` (channels-last), ``bf16`` / ``fp16`` (autocast),
``graph`` (the training step as one CUDA graph) and ``compile`` / ``compile-ro`` /
``compile-mat`` (torch.compile default / reduce-overhead / max-autotune-no-cudagraphs) run by
``FastImageClassifier`` -- the path ``configs/cnmc/*_fast_cnmc.py`` train with. See
:mod:`mmbloodcell.apis.benchmark` for what is timed.

The GPU run (about 3 minutes; the budget stops it even if compiles are slow):

    python benchmarks/cnmc_throughput.py --device cuda --equivalence --time-budget-s 170 \
        --out benchmarks/results/cnmc_throughput.json --md benchmarks/results/cnmc_throughput.md

CPU smoke test (what the tests run):

    python benchmarks/cnmc_throughput.py --device cpu --size 64 --batch 4 --iters 2 --warmup 1
"""
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

from mmbloodcell.apis.benchmark import main  # noqa: E402

if __name__ == '__main__':
    main()
