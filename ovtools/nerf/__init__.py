"""NeRF feature fields: the ``ovtools-field`` nerfstudio method and what queries/exports a trained field.

Every module here needs the optional extra ``nerf`` (``pip install "ovtools[nerf]"``, nerfstudio);
this package itself imports nothing, so ``import ovtools`` never needs nerfstudio.
"""
