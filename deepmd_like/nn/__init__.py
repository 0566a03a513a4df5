"""Neural-network potentials: neighbour lists, descriptors, fitting nets, models.

Public entry points:

- :class:`~deepmd_like.nn.model.EnergyModel`: the DeepPot-SE (``se_e2_a``)
  potential, built from a DeePMD-style ``model`` configuration;
- :func:`~deepmd_like.nn.evaluate.evaluate`: energies, forces and virials of
  any potential;
- :func:`~deepmd_like.nn.export.freeze` and
  :func:`~deepmd_like.nn.export.load_model`: frozen model files.
"""
