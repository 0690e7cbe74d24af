"""Regenerate the built-in template sets and the ImageNet class space from open_clip.

    python scripts/make_builtin_configs.py

Writes configs/templates/openai_imagenet.yaml (the CLIP paper's 80 ImageNet
templates, open_clip's OPENAI_IMAGENET_TEMPLATES) and configs/classes/imagenet.yaml
(open_clip's IMAGENET_CLASSNAMES).
"""

from pathlib import Path

import open_clip
import yaml

ROOT = Path(__file__).resolve().parents[1] / "configs"


def main() -> None:
    templates = [t("{}") for t in open_clip.OPENAI_IMAGENET_TEMPLATES]
    (ROOT / "templates").mkdir(parents=True, exist_ok=True)
    with open(ROOT / "templates" / "openai_imagenet.yaml", "w") as f:
        f.write("# The 80 ImageNet prompt templates of the CLIP paper (Radford et al. 2021),\n"
                "# taken from open_clip.OPENAI_IMAGENET_TEMPLATES by scripts/make_builtin_configs.py.\n")
        yaml.safe_dump({"name": "openai_imagenet", "templates": templates}, f, sort_keys=False, width=200)
    (ROOT / "classes").mkdir(parents=True, exist_ok=True)
    with open(ROOT / "classes" / "imagenet.yaml", "w") as f:
        f.write("# ImageNet-1k class names as cleaned for zero-shot use by OpenAI/open_clip\n"
                "# (open_clip.IMAGENET_CLASSNAMES), written by scripts/make_builtin_configs.py.\n")
        f.write("# Two names repeat in that list; class names must be unique here, so class 744\n"
                "# ('projectile, missile') and class 837 ('sunglasses, dark glasses, shades') are\n"
                "# renamed, keeping the OpenAI name as a synonym for prompt ensembling.\n")
        classes: list = list(open_clip.IMAGENET_CLASSNAMES)
        classes[744] = {"name": "projectile", "synonyms": ["missile"]}
        classes[837] = {"name": "dark glasses", "synonyms": ["sunglasses"]}
        yaml.safe_dump({"name": "imagenet", "description": "ImageNet-1k (1000 classes)",
                        "templates": "openai_imagenet", "classes": classes},
                       f, sort_keys=False, width=200, allow_unicode=True)


if __name__ == "__main__":
    main()
