"""The watched classifier: its spec and artefacts, training, data sets and attacks.

- :mod:`~ladis_core.model.spec`: :class:`~ladis_core.model.spec.ModelSpec`, building,
  saving and loading a model (normalisation is its first module, inputs in [0, 1]);
- :mod:`~ladis_core.model.store`: fetching a served model (folder, ``s3://``, tarball);
- :mod:`~ladis_core.model.training`: seeded training and prediction;
- :mod:`~ladis_core.model.data`: image data sets (the digits, image folders) and splits;
- :mod:`~ladis_core.model.attacks`: PGD and FGSM, batched and seeded.

Importing the package loads nothing heavy; import the module you need.
"""
