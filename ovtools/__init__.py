"""ovtools: open-vocabulary vision on shared CLIP encoders.

The heavy pieces (torch, open_clip) are imported lazily by the submodules, so
``import ovtools`` stays cheap.  Typical use::

    from ovtools.pipelines import DetectPipeline
    pipe = DetectPipeline(labels="man in red shirt, dog")
    detections = pipe(frame)          # RGB uint8 (H, W, 3)
"""

__version__ = "0.1.0"
