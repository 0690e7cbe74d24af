"""Masked-crop accuracy of a model on rendered 3D-world views (the check behind scripts/finetune_shapes3d.sh).

    python scripts/eval_views3d_crops.py [PRETRAINED_TAG] [N_SCENES]      # default: shapes3d 12

Held-out 3D scenes (seed 3000+), the 3D pipeline's 13 planned views, ground-truth
instance masks taken from the renders, masked crops encoded as the pipeline does
(``MaskFeatures``, mean fill, padding 0.2), top-1 over the ``shapes3d`` class
space and how often the true class beats its negatives; per kind (object / floor)
and per view (ring / top).  Prints JSON, then the most common confusions.
"""
import sys, time, json, collections
import numpy as np, torch
torch.set_num_threads(2)
from ovtools.datasets.scenes3d import generate_scenes3d, SCENE3D_CLASS_NAMES
from ovtools.scene3d import plan_views, render_points, estimate_point_spacing
from ovtools.encoders import CLIPEncoder
from ovtools.heads.mask_features import MaskFeatures
from ovtools.prompts import ClassSpace, build_class_embeddings, EmbeddingCache
from ovtools.heads.scoring import open_set_scores

pretrained = sys.argv[1] if len(sys.argv) > 1 else "shapes3d"
n_scenes = int(sys.argv[2]) if len(sys.argv) > 2 else 12
t0 = time.time()
enc = CLIPEncoder("ovtools-shapes", pretrained, device="cpu")
space = ClassSpace.load("shapes3d")
assert space.names == list(SCENE3D_CLASS_NAMES)
emb = build_class_embeddings(enc, space, cache=EmbeddingCache(enabled=False))
mf = MaskFeatures(enc, "crop", mask_fill="mean", context_padding=0.2)
res = collections.defaultdict(list)  # kind -> list of (correct, beats_neg)
conf = collections.Counter()
for scene in generate_scenes3d(n_scenes, seed=3000, points=150_000):
    sp = estimate_point_spacing(scene.points)
    for cam in plan_views(scene.points, n_around=6, elevations=(30, 55), size=(480, 640)):
        r = render_points(scene.points, scene.colors, cam.K, cam.pose, cam.size, point_size_m=1.5 * sp)
        idx = r.index.numpy()
        inst = np.where(idx >= 0, scene.instance_id[np.maximum(idx, 0)], -1)
        masks, truth = [], []
        for k in range(len(scene.objects) + 1):
            m = inst == k
            if m.sum() >= 80:
                masks.append(m); truth.append(0 if k == 0 else scene.objects[k - 1].class_id)
        if not masks:
            continue
        x = r.rgb.permute(2, 0, 1)[None].float() / 255
        f = mf(x, torch.from_numpy(np.stack(masks)))
        s = open_set_scores(f, emb, enc.logit_scale)
        pred = s.logits.argmax(1).tolist()
        for t, p, bn in zip(truth, pred, s.beats_negatives.tolist()):
            kind = "floor" if t == 0 else "object"
            view = "top" if cam.name == "top" else "around"
            res[kind].append((t == p, bn[t]))
            res[f"{kind}-{view}"].append((t == p, bn[t]))
            if t != p:
                conf[(SCENE3D_CLASS_NAMES[t], SCENE3D_CLASS_NAMES[p])] += 1
out = {k: {"n": len(v), "top1": float(np.mean([a for a, _ in v])), "true_beats_negatives": float(np.mean([b for _, b in v]))}
       for k, v in res.items()}
print(json.dumps(out, indent=1))
print("top confusions", conf.most_common(12))
print(f"{time.time() - t0:.0f} s")
