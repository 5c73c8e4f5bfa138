"""The width-resolution model bank (issue 3, part 1; seed paper 001, Qin et al.).

One slimmable 1-D CNN supernet is trained collaboratively (sandwich rule, in-place distillation)
over widths and input resolutions, its BatchNorm statistics are recomputed per (width,
resolution), and every configuration of a grid is exported as a standalone ONNX graph.

- :mod:`tools.bank.windows`: the lower-resolution windows, cut the way the agent cuts them
  (``agent.resampling.Resampler`` then ``sliding_windows`` with hop R/2);
- :mod:`tools.bank.supernet`: the slimmable network, BN recalibration, plain-module extraction;
- :mod:`tools.bank.supernet2d`: the same for the per-column 2-D layout (``build --arch column2d``,
  a trial); :mod:`tools.bank.arch` picks the functions of a supernet's architecture;
- :mod:`tools.bank.train`: the sandwich-rule training loop;
- :mod:`tools.bank.build`: ``python -m tools.bank.build`` (train, export, evaluate, register);
- :mod:`tools.bank.distill`: ``python -m tools.bank.distill``, every member distilled from the
  full configuration after the build: :mod:`tools.bank.distill_plan` (who learns from whom),
  :mod:`tools.bank.teachers` and :mod:`tools.bank.distill_data` (soft targets, windows),
  :mod:`tools.bank.distill_member` (one member), :mod:`tools.bank.distill_report` (figures);
- :mod:`tools.bank.independent`: ``python -m tools.bank.independent``, the same configurations
  trained alone with the same recipe (:mod:`tools.bank.independent_train`), compared with the
  collaborative members (:mod:`tools.bank.independent_report`).

Compression (``python -m tools.bank.compress``, run after build or by ``build --compress``):

- :mod:`tools.bank.parent`: a member's ONNX file back into a PyTorch module;
- :mod:`tools.bank.plain_arch`: which architecture a member is (``wr-`` 1-D, ``wc-`` per-column
  2-D) and the prunable form of the column network;
- :mod:`tools.bank.importance`: channel importance (weight L1 via torch-pruning, activation);
- :mod:`tools.bank.prune`: sensitivity analysis, per-layer channel plan, iterative pruning;
- :mod:`tools.bank.finetune`: fine-tuning of a pruned network, distilled from its parent;
- :mod:`tools.bank.prune_stage`, :mod:`tools.bank.quantize_stage`: the two compress stages;
- :mod:`tools.bank.quantize`: static QDQ int8 quantization with ONNX Runtime, keep rule;
- :mod:`tools.bank.evaluate`, :mod:`tools.bank.latency`: metrics and interleaved timing;
- :mod:`tools.bank.report`, :mod:`tools.bank.plots`: docs/model-bank.md tables and plots.
"""
