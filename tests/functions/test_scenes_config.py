"""Scenes declared in YAML: the packaged file behaves as the old constants; a new scene needs
configuration only; mistakes in the file and in documents are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from functions.core.errors import UnknownScene
from functions.core.scenes import (
    I2I,
    QA,
    SCENES_FILE_ENV,
    T2I,
    InvalidDocument,
    SceneConfigError,
    get_scene,
    parse_scenes,
)

CATALOGUE = """
scenes:
  catalogue:
    kind: both
    fields:
      title: {type: text, required: true}
      description: text
      price: float
      brand: keyword
      colours: keyword_list
      in_stock: {type: boolean, default: false}
      released_at: datetime
      stock_count: {type: integer, default: 0}
      image: image
    embed_template: "{title}. {description}"
    bm25_fields: [title, description, brand]
    filterable: [price, brand, colours, in_stock, released_at, stock_count]
    returned: [title, price, brand, in_stock, released_at, image]
"""


def test_packaged_scenes_behave_as_the_former_constants() -> None:
    assert QA.document_fields == ("id", "question", "answer", "category")
    assert QA.array_filter_fields == ("category",) and QA.scalar_filter_fields == {}
    assert QA.embedding_text({"question": " Why? ", "answer": "", "x": 1}) == "Why?"
    assert QA.embedding_text({"question": "a", "answer": "b"}) == "a b"
    assert QA.filter_values({"category": ["x", "y"]}) == {"category": ["x", "y"]}
    assert T2I.store == I2I.store == "images" and T2I.kind == "image"
    assert (T2I.query, I2I.query) == ("text", "image")
    assert T2I.document_fields == (
        *("id", "name", "url", "thumbnail_url", "caption", "captions", "tags"),
    )


def test_a_scene_file_named_by_the_environment_adds_a_scene(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "scenes.yaml"
    path.write_text(CATALOGUE)
    monkeypatch.setenv(SCENES_FILE_ENV, str(path))
    scene = get_scene("catalogue")
    assert scene.kind == "both" and scene.max_results == 1000
    assert scene.array_filter_fields == ("colours",)
    assert scene.scalar_filter_fields["price"] == "float"
    with pytest.raises(UnknownScene, match="known scenes: catalogue"):
        get_scene("qa")


def test_embed_template_and_bm25_fields_shape_the_texts() -> None:
    scene = parse_scenes(CATALOGUE)["catalogue"]
    doc = {"title": "Kettle", "description": "Boils water", "brand": "Acme"}
    assert scene.embedding_text(doc) == "Kettle. Boils water"
    assert scene.bm25_text(doc) == "Kettle Boils water Acme"


def test_validate_document_types_fields_and_names_the_bad_one() -> None:
    scene = parse_scenes(CATALOGUE)["catalogue"]
    good = {
        "id": 7,
        "title": "Kettle",
        "price": 20,
        "brand": "Acme",
        "colours": "red",
        "released_at": "2024-05-01T10:00:00Z",
        "extra": {"kept": True},
    }
    typed = scene.validate_document(good)
    assert typed["id"] == "7" and typed["price"] == 20.0 and isinstance(typed["price"], float)
    assert typed["colours"] == ["red"] and typed["extra"] == {"kept": True}
    values = scene.filter_values(typed)
    assert values["released_at"] == 1714557600 and values["in_stock"] is False
    for bad, field in [
        ({**good, "price": "cheap"}, "price"),
        ({**good, "in_stock": "yes"}, "in_stock"),
        ({**good, "released_at": "last May"}, "released_at"),
        ({**good, "colours": [1, 2]}, "colours"),
        ({k: v for k, v in good.items() if k != "title"}, "title"),
        ({k: v for k, v in good.items() if k != "price"}, "price"),
        ({**good, "brand": "x" * 300}, "brand"),
    ]:
        with pytest.raises(InvalidDocument, match=f"^{field}: "):
            scene.validate_document(bad)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("filterable: [price,", "filterable: [description, price,"), "cannot filter"),
        (("bm25_fields: [title,", "bm25_fields: [nope, title,"), "'nope' is not a declared"),
        (("price: float", "price: money"), "fields.price.type"),
        (('embed_template: "{title}. {description}"', 'embed_template: "{titel}"'), "titel"),
        (("kind: both", "kind: both\n    colour: red"), "colour"),
    ],
)
def test_invalid_scene_files_are_refused_naming_the_key(
    change: tuple[str, str], message: str
) -> None:
    with pytest.raises(SceneConfigError, match=message) as info:
        parse_scenes(CATALOGUE.replace(*change), "my.yaml")
    assert str(info.value).startswith("my.yaml: scenes.catalogue")


def test_schema_fingerprint_changes_with_the_filterable_fields_only() -> None:
    scene = parse_scenes(CATALOGUE)["catalogue"]
    same = parse_scenes(CATALOGUE.replace("image: image", "image: image\n      note: text"))
    other = parse_scenes(CATALOGUE.replace("price: float", "price: integer"))
    assert same["catalogue"].fingerprint() == scene.fingerprint()
    assert other["catalogue"].fingerprint() != scene.fingerprint()
