"""HiDLR inside training frameworks. Each submodule imports its framework, so import it directly:

- :mod:`hidlr.integrations.lightning`: a Lightning ``Callback`` (probe from ``training_step``) and a
  ``LearningRateMonitor`` that logs the applied rates;
- :mod:`hidlr.integrations.transformers`: a ``TrainerCallback`` for the Transformers ``Trainer``.
"""
