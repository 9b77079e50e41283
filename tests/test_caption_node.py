"""Janus Caption Folder, run through its declared inputs (real ComfyUI host modules when importable, else the
stand-ins in comfy_standins/), on a tiny checkpoint. Fixtures in tests/conftest.py, as for test_nodes.py."""

import comfy.model_management as mm
import comfy.utils
import comfy_host
import folder_paths
import pytest
from comfy_host import call, pack_module, result
from test_caption import caption_files, leftovers, make_images

host = comfy_host.setup()  # made by tests/conftest.py before this module imported ComfyUI's modules
JanusError = pack_module("janus_runtime").JanusError
FAST = dict(max_new_tokens=4, batch_size=2)


@pytest.fixture
def input_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(folder_paths, "get_input_directory", lambda: str(tmp_path / "input"))
    monkeypatch.setattr(folder_paths, "get_output_directory", lambda: str(tmp_path / "output"))
    return tmp_path / "input"


def test_caption_folder_writes_sidecars_reports_and_resumes(pack, handle, input_dir):
    make_images(input_dir / "set", 5)
    (input_dir / "set" / "img_001.png").write_bytes(b"garbage")
    host.clear()
    out = call(pack["JanusCaptionFolder"], janus_model=handle, folder="set", prefix="ohwx, ", node_id="4",
               **FAST)
    summary, captions = out["result"]
    assert summary.startswith(str(input_dir / "set"))
    assert "5 images: 4 captions written, 0 skipped (caption exists), 1 failed" in summary
    assert "failed: img_001.png: image" in summary and "cannot be read as an image" in summary
    files = caption_files(input_dir / "set")
    assert sorted(files) == ["img_000.txt", "img_002.txt", "img_003.txt", "img_004.txt"]
    assert captions == [files[k] for k in sorted(files)] and all(c.startswith("ohwx, ") for c in captions)
    assert [u[1:3] for u in host.updates] == [(i, 5) for i in range(1, 6)]
    assert any(t == ("4", "captioning 1-2 of 5: img_000.png, img_001.png") for t in host.texts)
    assert out["ui"]["text"] == [summary]

    again = result(call(pack["JanusCaptionFolder"], janus_model=handle, folder="set", prefix="ohwx, ", **FAST))
    assert "4 skipped (caption exists), 1 failed" in again[0] and again[1] == captions
    assert pack["JanusCaptionFolder"].IS_CHANGED() != pack["JanusCaptionFolder"].IS_CHANGED()  # always reruns


def test_cancel_stops_after_the_batch_and_a_rerun_completes(pack, handle, input_dir, tmp_path):
    make_images(input_dir / "cancel", 6)
    reference = tmp_path / "reference"
    call(pack["JanusCaptionFolder"], janus_model=handle, folder="cancel", output_folder=str(reference), **FAST)
    original = comfy.utils.ProgressBar.update_absolute

    def cancel_during_first_batch(self, value, total=None, preview=None):
        if value == 1:
            mm.interrupt_current_processing()  # the user presses Cancel
        original(self, value, total, preview)
    comfy.utils.ProgressBar.update_absolute = cancel_during_first_batch
    try:
        with pytest.raises(mm.InterruptProcessingException):
            call(pack["JanusCaptionFolder"], janus_model=handle, folder="cancel", **FAST)
    finally:
        comfy.utils.ProgressBar.update_absolute = original
    assert sorted(caption_files(input_dir / "cancel")) == ["img_000.txt", "img_001.txt"]  # the whole batch
    summary = result(call(pack["JanusCaptionFolder"], janus_model=handle, folder="cancel", **FAST))[0]
    assert "6 images: 4 captions written, 2 skipped" in summary
    assert caption_files(input_dir / "cancel") == caption_files(reference)
    assert not leftovers(input_dir / "cancel")


def test_output_folder_inside_comfy_output_mirrors_subfolders(pack, handle, input_dir, tmp_path):
    make_images(input_dir / "deep" / "a", 1)
    make_images(input_dir / "deep" / "b", 1, start=1)
    summary = result(call(pack["JanusCaptionFolder"], janus_model=handle, folder="deep", recursive=True,
                          output_folder="captions", existing_captions="overwrite", **FAST))[0]
    assert "2 captions written" in summary
    assert sorted(caption_files(tmp_path / "output" / "captions")) == ["a/img_000.txt", "b/img_001.txt"]
    assert not list((input_dir / "deep").rglob("*.txt"))


@pytest.mark.parametrize("given, match", [
    (dict(folder="../secrets"), r"folder '../secrets': '..' may not leave"),
    (dict(folder="set", output_folder="a/../../x"), r"output_folder 'a/../../x': '..' may not leave"),
    (dict(folder=""), "folder is empty"),
    (dict(folder="missing"), "not found or not a folder"),
    (dict(folder="set", question=" "), "question is empty"),
])
def test_bad_inputs_are_clear_errors(pack, handle, input_dir, given, match):
    make_images(input_dir / "set", 1)
    with pytest.raises(JanusError, match=match):
        call(pack["JanusCaptionFolder"], janus_model=handle, **given)


def test_absolute_folder_is_used_as_typed(pack, handle, input_dir, tmp_path):
    make_images(tmp_path / "elsewhere", 1)
    summary = result(call(pack["JanusCaptionFolder"], janus_model=handle, folder=str(tmp_path / "elsewhere"),
                          **FAST))[0]
    assert "1 captions written" in summary and (tmp_path / "elsewhere" / "img_000.txt").is_file()
