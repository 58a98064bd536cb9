"""The release parser: what it accepts, and how it words what it refuses."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from synthgate.config.manifest import read_manifest
from synthgate.config.release import content_hash, load_release, resolve_member
from synthgate.config.toml import ConfigError
from synthgate.storage import sha256_file
from tests.conftest import HANDMADE_TOML, write_handmade_release


@pytest.fixture
def release_dir(tmp_path):
    return write_handmade_release(tmp_path / "r", n=4)


def rewrite(release_dir, old, new):
    config = release_dir / "release.toml"
    config.write_text(config.read_text().replace(old, new))


def test_loads_the_documented_format(release_dir):
    release = load_release(release_dir)
    assert release.name == "handmade"
    assert release.class_names == ("soft tissue mass",)
    assert release.classes[0].model_output == "Mass"
    assert release.images.bit_depth == 8
    assert len(release.manifest.rows) == 4
    assert release.manifest.label_columns == ("soft tissue mass",)


@pytest.mark.parametrize(
    "old, new, key, words",
    [
        ("[images]", "[imgaes]", "images", "'imgaes' is not a known key"),
        ("min_count = 3", "min_cuont = 3", "classes.soft tissue mass.min_cuont", "did you mean 'min_count'"),
        ('mode = "L"', 'mode = "CMYK"', "images.mode", "is not one of"),
        ("width = 64", 'width = "64"', "images.width", "expected int"),
        ("width = 64", "width = 0", "images.width", "positive integer"),
        ('source_datasets = ["phantom-site-a"]', "source_datasets = []", "release.source_datasets", "generator learned from"),
        ('model_output = "Mass"\n', "", "classes.soft tissue mass.model_output", "required key is missing"),
        ('name = "handmade"', 'name = "../../elsewhere"', "release.name", "must be a plain name"),
        ('name = "handmade"', 'name = "/tmp/april"', "release.name", "must be a plain name"),
        ('name = "handmade"', 'name = ".hidden"', "release.name", "must be a plain name"),
        ('name = "handmade"', 'name = " "', "release.name", "must be a plain name"),
    ],
)
def test_config_errors_name_file_and_key(release_dir, old, new, key, words):
    rewrite(release_dir, old, new)
    with pytest.raises(ConfigError) as caught:
        load_release(release_dir)
    message = str(caught.value)
    assert caught.value.key == key
    assert str(release_dir / "release.toml") in message and words in message


def test_invalid_toml_is_reported_with_the_file(release_dir):
    rewrite(release_dir, "[images]", "[images")
    with pytest.raises(ConfigError, match="not valid TOML") as caught:
        load_release(release_dir)
    assert "release.toml" in str(caught.value)


def test_missing_release_toml(tmp_path):
    with pytest.raises(ConfigError, match="needs a release.toml"):
        load_release(tmp_path)


def test_reference_paths_must_exist(release_dir):
    (release_dir / "release.toml").write_text(
        HANDMADE_TOML + '\n[reference.train]\npath = "nowhere"\ndatasets = ["x"]\n[reference.test]\npath = "."\ndatasets = ["x"]\n'
    )
    with pytest.raises(ConfigError, match="does not exist") as caught:
        load_release(release_dir)
    assert caught.value.key == "reference.train.path"


@pytest.mark.parametrize(
    "text, problem",
    [
        ("", "manifest is empty"),
        ("file,label\na.png,1\n", "no 'path' column"),
        ("path,a,a\nx.png,1,1\n", "repeats a column"),
        ("path,a\nx.png,1,0\n", "line 2"),
    ],
)
def test_manifest_structure_errors(tmp_path, text, problem):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(text)
    with pytest.raises(ConfigError, match=problem) as caught:
        read_manifest(manifest)
    assert str(manifest) in str(caught.value)


def test_manifest_must_be_utf8(tmp_path):
    manifest = tmp_path / "manifest.csv"
    manifest.write_bytes(b"path,a\n\xff.png,1\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_manifest(manifest)


def test_manifest_that_is_a_directory_is_a_config_error(release_dir):
    rewrite(release_dir, 'mode = "L"', 'mode = "L"\nmanifest = "images"')
    with pytest.raises(ConfigError) as caught:
        load_release(release_dir)
    assert str(caught.value) == f"{release_dir / 'images'}: is a directory, not a manifest CSV"


def test_manifest_that_is_a_fifo_is_refused_without_reading_it(tmp_path):
    os.mkfifo(tmp_path / "manifest.csv")
    with pytest.raises(ConfigError, match="is a FIFO"):
        read_manifest(tmp_path / "manifest.csv")


def test_unreadable_manifest_is_a_config_error(tmp_path, monkeypatch):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path\n")

    def denied(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", denied)  # chmod cannot stop root, who runs some CI jobs
    with pytest.raises(ConfigError) as caught:
        read_manifest(manifest)
    assert str(caught.value) == f"{manifest}: manifest cannot be read (Permission denied)"


@pytest.mark.parametrize("header, row", [("path,seed,finding", "a.png,1,0"), ("seed,path,finding", "1,a.png,0")])
def test_manifest_byte_order_mark_is_not_part_of_the_first_column(tmp_path, header, row):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f"{header}\n{row}\n", encoding="utf-8-sig")  # Excel's "CSV UTF-8"
    parsed = read_manifest(manifest)
    assert parsed.columns == tuple(header.split(",")) and parsed.label_columns == ("finding",)
    assert parsed.rows[0].path == "a.png" and parsed.rows[0].labels == {"finding": "0"}


def test_resolve_member_refuses_escapes(tmp_path):
    root = tmp_path / "release"
    (root / "images").mkdir(parents=True)
    (tmp_path / "secret.png").write_bytes(b"x")
    os.symlink(tmp_path / "secret.png", root / "images" / "link.png")
    assert resolve_member(root, "images/a.png") == (root / "images/a.png", None)
    assert resolve_member(root, "../secret.png")[1] == "path escapes the release folder"
    assert resolve_member(root, "images/../../secret.png")[1] == "path escapes the release folder"
    assert resolve_member(root, "/etc/passwd")[1] == "absolute path"
    assert resolve_member(root, "images/link.png")[1] == "symlink pointing outside the release"
    assert resolve_member(root, "")[1] == "empty path"


@given(st.lists(st.sampled_from(["a", "b", "..", ".", "images"]), min_size=1, max_size=6))
def test_resolved_members_never_leave_the_root(tmp_path_factory, parts):
    root = tmp_path_factory.mktemp("root")
    member, refused = resolve_member(root, "/".join(parts))
    assert (member is None) != (refused is None)
    if member is not None:
        assert member.resolve().is_relative_to(root.resolve())


def test_content_hash_changes_with_any_byte(release_dir):
    release = load_release(release_dir)
    digests = {row.path: sha256_file(release_dir / row.path) for row in release.manifest.rows}
    before = content_hash(release.manifest.file, digests)
    assert before == content_hash(release.manifest.file, dict(digests))
    changed = dict(digests, **{"images/000.png": "0" * 64})
    assert content_hash(release.manifest.file, changed) != before
