"""Class spaces, template sets and --labels parsing."""

from __future__ import annotations

import pytest

from ovtools.errors import ConfigError, UnknownNameError
from ovtools.prompts import (ClassSpace, available_class_spaces, available_template_sets, load_templates,
                             parse_labels)


@pytest.mark.parametrize("text,expected", [
    ("man in red shirt, dog", ["man in red shirt", "dog"]),
    ('"salt, pepper", bowl', ["salt, pepper", "bowl"]),
    ("  zebra ,goat,   grass   plain ", ["zebra", "goat", "grass plain"]),
    ("single", ["single"]),
])
def test_parse_labels(text, expected):
    assert parse_labels(text) == expected


def test_parse_labels_merges_duplicates_with_warning():
    with pytest.warns(UserWarning, match="merged"):
        assert parse_labels("Dog, cat, dog, CAT") == ["Dog", "cat"]


@pytest.mark.parametrize("text", ["dog,,cat", "dog, ", "", " , "])
def test_parse_labels_rejects_empty(text):
    with pytest.raises(ValueError, match="empty|no labels"):
        parse_labels(text)


def test_builtin_spaces_and_templates():
    assert {"coco", "imagenet"} <= set(available_class_spaces())
    assert {"openai_imagenet", "single", "objects"} <= set(available_template_sets())
    coco = ClassSpace.load("coco")
    assert len(coco) == 80 and coco.names[0] == "person" and coco.names[-1] == "toothbrush"
    imagenet = ClassSpace.load("imagenet")
    assert len(imagenet) == 1000 and len(set(imagenet.names)) == 1000
    assert len(load_templates("openai_imagenet")) == 80
    assert load_templates("single").templates == ("a photo of a {}.",)


def test_openai_templates_match_open_clip():
    import open_clip

    assert list(load_templates("openai_imagenet").templates) == [t("{}") for t in open_clip.OPENAI_IMAGENET_TEMPLATES]


def test_unknown_names_list_builtins():
    with pytest.raises(UnknownNameError, match="coco"):
        ClassSpace.load("no-such-space")
    with pytest.raises(UnknownNameError, match="openai_imagenet"):
        load_templates("no-such-templates")


@pytest.mark.parametrize("body,where", [
    ("classes: [dog, {name: cat, synonyms: 3}]", "classes[1].synonyms"),
    ("classes: [dog, {synonyms: [x]}]", "classes[1].name"),
    ("classes: [dog, {name: cat, colour: red}]", "classes[1]: unknown key"),
    ("classes: []", "'classes' must be a non-empty list"),
    ("name: x", "missing key 'classes'"),
    ("classes: [dog, Dog]", "classes[1] 'Dog' repeats classes[0]"),
    ("classes: [dog]\nnegatives: [ok, '']", "negatives[1]"),
    ("classes: [dog\n  - : :", "invalid YAML"),
    ("clases: [dog]", "unknown key"),
])
def test_yaml_errors_name_file_and_key(tmp_path, body, where):
    path = tmp_path / "bad.yaml"
    path.write_text(body)
    with pytest.raises(ConfigError) as e:
        ClassSpace.from_yaml(path)
    assert str(path) in str(e.value) and where in str(e.value)


def test_template_yaml_errors(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("templates: ['a photo', 'a {} of {}']")
    with pytest.raises(ConfigError, match=r"t.yaml.*templates\[0\]"):
        load_templates(path)


def test_fingerprint_depends_on_content_not_source(tmp_path):
    a = tmp_path / "a.yaml"
    a.write_text("name: a\nclasses: [dog, {name: cat, synonyms: [kitty]}]")
    b = tmp_path / "b.yaml"
    b.write_text("classes:\n  - dog\n  - name: cat\n    synonyms: [kitty]\nname: other")
    assert ClassSpace.from_yaml(a).fingerprint() == ClassSpace.from_yaml(b).fingerprint()
    assert ClassSpace.from_labels("dog, cat").fingerprint() != ClassSpace.from_yaml(a).fingerprint()


def test_plain_labels_inherit_a_known_space_s_negatives_and_synonyms():
    known = ClassSpace.load("shapes")
    space = ClassSpace.from_labels("Red Star, teapot", known=known)
    assert space.names == ["Red Star", "teapot"]  # the user's spelling and order
    star = space.classes[0]
    assert "red circle" in star.negatives and "orange star" in star.negatives  # its look-alikes
    assert space.classes[1].negatives == () and space.negatives == known.negatives
    assert space.templates is None  # the pipeline's template set, as for any plain label
    assert "red circle" in space.all_negatives() and "background" in space.all_negatives()
    # asked together, a look-alike is a class and not a negative
    both = ClassSpace.from_names(["red star", "red circle"], known=known)
    assert "red circle" not in both.all_negatives() and "red square" in both.all_negatives()
    # names the known space does not have: plain classes, as without it
    assert ClassSpace.from_labels("teapot", known=known) == ClassSpace.from_labels("teapot")
