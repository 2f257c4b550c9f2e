"""``build -o DIR`` replaces only a previous build, recognised by its content, and refuses an
output it cannot write before compiling anything (compiler.export.target)."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from buildfixtures import SPECS

from blueprint.errors import BlueprintError
from compiler.export import build as build_mod
from compiler.export import onnx_export


@pytest.fixture
def no_export(monkeypatch):
    def fail(*args, **kwargs):
        pytest.fail("the output should have been refused before export")

    monkeypatch.setattr(build_mod, "default_compile", fail)
    monkeypatch.setattr(onnx_export, "export_model", fail)


def _tree(d):
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _refused(target, match):
    root = next(p for p in target.parents if len(str(p)) < 200 and p.is_dir())
    before = _tree(root)
    with pytest.raises(BlueprintError, match=match):
        build_mod.build(SPECS / "gpt2-tiny.yaml", target)
    assert _tree(root) == before


def test_a_folder_with_some_manifest_json_is_not_a_build(tmp_path, no_export):
    """A browser extension or web app has a manifest.json too; its folder must survive -o."""
    ext = tmp_path / "extension"
    ext.mkdir()
    (ext / "manifest.json").write_text(json.dumps({"manifest_version": 3, "name": "My extension"}))
    (ext / "background.js").write_text("chrome.runtime.onInstalled.addListener(() => {});")
    _refused(ext, "not a previous build .its manifest.json is not a blueprint build manifest")
    (ext / "background.js").unlink()
    _refused(ext, "not a blueprint build manifest")
    (ext / "manifest.json").write_text("[1, 2]")
    _refused(ext, "a JSON list, not an object")


def test_a_previous_build_changed_by_the_user_is_not_replaced(builds, tmp_path, request):
    target = tmp_path / "out"
    shutil.copytree(builds("gpt2-tiny").directory, target)
    request.getfixturevalue("no_export")
    (target / "notes.md").write_text("my results")  # the user keeps notes in the build folder
    _refused(target, "holds files the build did not write: notes.md")
    (target / "notes.md").unlink()
    (target / "spec.lock.yaml").write_text((target / "spec.lock.yaml").read_text() + "# edited\n")
    _refused(target, "spec.lock.yaml does not match the manifest's spec_sha256")


def test_outputs_that_cannot_be_written_are_refused_before_compiling(tmp_path, no_export, monkeypatch):
    (tmp_path / "afile").write_text("x")
    _refused(tmp_path / "afile" / "out", r"afile is a file, not a folder")
    _refused(tmp_path / "afile", "exists and is not a build directory")
    _refused(tmp_path / ("x" * 250), "name 'x+...' is too long")
    _refused(tmp_path / "/".join(["d" * 200] * 25), "-o path is too long")
    # a read-only mount (root ignores permissions, so the check is driven through os.access)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(tmp_path) else real_access(p, mode))
    _refused(tmp_path / "new" / "out", f"cannot write .*: {tmp_path} is not writable")


def test_an_empty_folder_and_a_missing_one_are_fine(tmp_path):
    from compiler.export.target import check_target

    (tmp_path / "empty").mkdir()
    check_target(tmp_path / "empty")
    check_target(tmp_path / "a" / "b" / "c")
