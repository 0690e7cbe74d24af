"""3D scenes: render point clouds, plan virtual views, read posed RGB-D, fuse and distil 2D features.

Conventions (see :mod:`ovtools.scene3d.camera`): world frame z-up in metres;
cameras OpenCV (x right, y down, z forward); intrinsics ``K`` (3, 3) in pixels
with pixel centres at integer coordinates; ``pose`` = camera-to-world 4×4.
Points are float32 (N, 3) metres, colours uint8 (N, 3).  Scenes read from files are first moved
to a z-up local frame near the origin (:mod:`ovtools.scene3d.frame`); outputs keep the input's frame.

Typical flow for a bare point cloud::

    cams = plan_views(points)
    spacing = estimate_point_spacing(points)
    views = []
    for cam in cams:
        r = render_points(points, colors, cam.K, cam.pose, cam.size, point_size_m=1.5 * spacing)
        views.append(FusionView(cam.K, cam.pose, r.depth, dense_partition(encoder, r.rgb)))
    fused = fuse_features(points, views)
    model = train_distill(points, colors, fused.features, fused.seen)
    feats = ensemble_features(fused.features, model.predict(points, colors), class_embeddings)
"""

from .camera import Camera, intrinsics_from_fov, scale_intrinsics
from .depth import check_depth_scale, folder_depth_scale, read_depth
from .distill import DistillModel, ensemble_features, train_distill
from .fuse import (
    FeaturePartition,
    FusedFeatures,
    FusionView,
    dense_partition,
    fuse_features,
)
from .frame import UP_AXES, detect_up_axis, local_frame, rotation_to_z_up
from .instances import connected_instances, instance_boxes
from .render import Render, estimate_point_spacing, render_points
from .rgbd import RGBDFolder, RGBDFrame, backproject_rgbd, write_rgbd_folder
from .transforms import opencv_to_opengl, write_transforms_json
from .views import look_at, looks_like_room, plan_views

__all__ = [
    "UP_AXES",
    "Camera",
    "DistillModel",
    "FeaturePartition",
    "FusedFeatures",
    "FusionView",
    "RGBDFolder",
    "RGBDFrame",
    "Render",
    "backproject_rgbd",
    "check_depth_scale",
    "connected_instances",
    "dense_partition",
    "detect_up_axis",
    "ensemble_features",
    "estimate_point_spacing",
    "folder_depth_scale",
    "fuse_features",
    "instance_boxes",
    "intrinsics_from_fov",
    "local_frame",
    "look_at",
    "looks_like_room",
    "opencv_to_opengl",
    "plan_views",
    "read_depth",
    "render_points",
    "rotation_to_z_up",
    "scale_intrinsics",
    "train_distill",
    "write_rgbd_folder",
    "write_transforms_json",
]
