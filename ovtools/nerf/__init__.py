"""NeRF feature fields (LERF-style language fields) as a nerfstudio method, and what queries and exports them.

Everything here needs the optional extra ``pip install "ovtools[nerf]"`` (nerfstudio); this package
itself imports nothing, so ``import ovtools`` and every other command work without it.
"""
