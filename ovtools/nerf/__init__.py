"""NeRF feature fields: the ``ovtools-field`` nerfstudio method and what queries and exports a trained field.

* nerfstudio plug-ins: :mod:`~ovtools.nerf.method` (methods ``ovtools-field``, ``ovtools-field-small``; model
  :mod:`~ovtools.nerf.model`, data :mod:`~ovtools.nerf.data`, crop pyramid :mod:`~ovtools.nerf.pyramid`) and
  :mod:`~ovtools.nerf.dataparser` (``ovtools-rgbd``: ScanNet-layout RGB-D folders); :func:`~ovtools.nerf.train.train_field`.
* using a run: :class:`~ovtools.nerf.pipeline.FeatureFieldPipeline` (labels and relevancy at 3D points, relevancy
  maps, renders), :mod:`~ovtools.nerf.export` (labelled surface in segment3d's PLY schema),
  :mod:`~ovtools.nerf.evaluate` (mIoU at ground-truth points, LERF localisation).

The modules here need the optional extra ``nerf`` (``pip install "ovtools[nerf]"``, nerfstudio), except
:mod:`ovtools.nerf.pyramid`; this package itself imports nothing, so ``import ovtools`` never needs nerfstudio.
"""
