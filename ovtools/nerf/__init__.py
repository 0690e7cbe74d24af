"""NeRF feature fields: the ``ovtools-field`` nerfstudio method and what queries/exports a trained field.

The modules here need the optional extra ``nerf`` (``pip install "ovtools[nerf]"``, nerfstudio), except
:mod:`ovtools.nerf.pyramid`; this package itself imports nothing, so ``import ovtools`` never needs nerfstudio.
"""
