"""Experiments on labelled corpora: cross-validation, comparisons, ensembles, deployable models.

- :mod:`~emofuse.experiments.loading`: manifest, folds and cached features of a config;
- :mod:`~emofuse.experiments.systems`: what is trained and tested per fold, by name;
- :mod:`~emofuse.experiments.records`: fold results as typed records, read from and written to
  JSON; :mod:`~emofuse.experiments.scoring`: their metrics and summaries;
- :mod:`~emofuse.experiments.crossval`, :mod:`~emofuse.experiments.compare`,
  :mod:`~emofuse.experiments.ensemble`, :mod:`~emofuse.experiments.deployable`: the experiments;
- :mod:`~emofuse.experiments.variants`, :mod:`~emofuse.experiments.stats`,
  :mod:`~emofuse.experiments.claims`, :mod:`~emofuse.experiments.subsets`,
  :mod:`~emofuse.experiments.report`: the compared systems, paired statistics, the claims they
  test, a corpus's named parts rescored, Markdown/figures.
"""
