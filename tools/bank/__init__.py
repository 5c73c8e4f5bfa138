"""The width-resolution model bank (issue 3, part 1; seed paper 001, Qin et al.).

One slimmable 1-D CNN supernet is trained collaboratively (sandwich rule, in-place distillation)
over widths and input resolutions, its BatchNorm statistics are recomputed per (width,
resolution), and every configuration of a grid is exported as a standalone ONNX graph.

- :mod:`tools.bank.windows`: the lower-resolution windows, cut the way the agent cuts them
  (``agent.windowing.Resampler`` then ``sliding_windows`` with hop R/2);
- :mod:`tools.bank.supernet`: the slimmable network, BN recalibration, plain-module extraction;
- :mod:`tools.bank.train`: the sandwich-rule training loop;
- :mod:`tools.bank.build`: ``python -m tools.bank.build`` (train, export, evaluate, register).
"""
