"""Bad or unusual input to the runtime (issue 16): each case gets a message naming the input and the fix, or
the right result. The README table "What happens when..." points at these tests."""

import copy
import json
import logging
import shutil
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from janus_runtime import JanusError, ModelFilesError, load_model
from janus_runtime.config import parse_config
from janus_runtime.hub import resolve_model_path
from janus_runtime.processing import BOI_TAG, EOI_TAG, IMAGE_TAG, PAD_TAG, open_image
from janus_runtime.tiny import TINY_OFFICIAL_CONFIG, hf_config

EOS = "<｜end▁of▁sentence｜>"
FORGERIES = [EOS, BOI_TAG, EOI_TAG, IMAGE_TAG, PAD_TAG, "<|User|>:", "<|Assistant|>:", "<｜begin▁of▁sentence｜>"]


# ------------------------------------------------------------------------------------------------------------
# user text is text

@pytest.fixture(scope="module")
def text(tiny_dir):
    from janus_runtime.processing import TextProcessor
    return TextProcessor(tiny_dir)


def special_ids(text):
    return set(text.tokenizer.all_special_ids)


def plain_ids(text, s):
    """``s`` tokenised with every tag string read as characters (the tokenizer's own switch)."""
    return text.tokenizer.encode(s, add_special_tokens=False, split_special_tokens=True)


@pytest.mark.parametrize("forged", FORGERIES)
def test_tag_strings_in_a_generation_prompt_are_plain_text(text, forged):
    prompt = f"a cat {forged} on a mat"
    ids = text.encode(text.generation_prompt(prompt))
    user, assistant = (text.tag_ids[r] for r in text.roles)
    # exactly the template's own tags: BOS, <|User|>, <|Assistant|>, <begin_of_image>, in that order
    assert [i for i in ids if i in special_ids(text)] == [text.ids.bos, user, assistant, text.ids.boi]
    assert ids[2:2 + len(plain_ids(text, f": {prompt}\n\n"))] == plain_ids(text, f": {prompt}\n\n")


@pytest.mark.parametrize("forged", FORGERIES)
def test_tag_strings_in_a_question_and_history_are_plain_text(text, forged):
    question = f"{IMAGE_TAG}\nWhat is {forged} here?"
    prompt = text.understanding_prompt(question, 1, system_prompt=f"Be {forged} brief.",
                                       history=[(f"Hi {forged}", f"Hello {forged}")])
    ids = text.encode(prompt)
    user, assistant = (text.tag_ids[r] for r in text.roles)
    # the documented placeholder in the current question stays the image slot; nothing else is special
    expected = [text.ids.bos, user, assistant, text.ids.eos, user, text.ids.image, assistant]
    if forged == IMAGE_TAG:  # the question then holds two placeholders, both image slots
        expected = [text.ids.bos, user, assistant, text.ids.eos, user, text.ids.image, text.ids.image, assistant]
    assert [i for i in ids if i in special_ids(text)] == expected


def test_ordinary_prompts_keep_the_official_ids(text):
    """Without tag strings in user text, the ids are those of the official tokenizer.encode on the template."""
    for q in ["What is this?", "  Describe it.\n\nThen list colours: red, blue. ", "日本語 123", "x"]:
        for prompt in [text.generation_prompt(q), text.understanding_prompt(q, 2),
                       text.understanding_prompt(f"Compare {IMAGE_TAG} and {IMAGE_TAG}", 0, system_prompt="S",
                                                 history=[(q, "An answer.")])]:
            assert text.encode(prompt) == text.tokenizer.encode(str(prompt))


def test_understand_with_forged_question_runs(tiny_model):
    from janus_runtime import understand
    answer = understand(tiny_model, [], f"Say {EOS} then {BOI_TAG}?", max_new_tokens=2)
    assert len(answer.token_ids) <= 2


# ------------------------------------------------------------------------------------------------------------
# images

def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    grey = np.arange(0, 65536, 64, dtype=np.uint16).reshape(32, 32)  # a full-range ramp
    Image.fromarray(grey).save(tmp_path / "ramp16.png")
    assert Image.open(tmp_path / "ramp16.png").mode.startswith("I")
    rgb = np.asarray(open_image(tmp_path / "ramp16.png"))
    assert rgb.shape == (32, 32, 3)
    expected = np.rint(grey / 257.0).astype(np.uint8)
    assert np.abs(rgb[..., 0].astype(int) - expected).max() <= 1
    assert (rgb == 255).mean() < 0.01  # was 99.6 % white


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_exif_orientation_is_honoured(tmp_path, suffix):
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = (255, 0, 0)  # left half red, right half blue
    stored[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": the stored left edge becomes the top
    Image.fromarray(stored).save(tmp_path / f"rot{suffix}", exif=exif, quality=95)
    shown = np.asarray(open_image(tmp_path / f"rot{suffix}")).astype(int)
    assert shown.shape == (40, 20, 3)
    assert shown[5, 10, 0] > 200 and shown[5, 10, 2] < 50   # top: red
    assert shown[35, 10, 2] > 200 and shown[35, 10, 0] < 50  # bottom: blue


def test_animated_gif_uses_frame_0_and_says_so(tmp_path, caplog):
    frames = [Image.new("RGB", (8, 8), colour) for colour in ("red", "blue", "green")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    with caplog.at_level(logging.WARNING, logger="janus_runtime"):
        image = open_image(tmp_path / "anim.gif")
    assert tuple(np.asarray(image)[0, 0]) == (255, 0, 0)
    assert "anim.gif has 3 frames; using frame 0" in caplog.text


def _png_header_only(path, width, height):
    """A PNG that declares width x height 1-bit pixels and holds almost no data (a decompression bomb)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


@pytest.mark.parametrize("side", [10_000, 20_000])  # above PIL's warning limit, above its error limit
def test_decompression_bomb_is_refused(tmp_path, side):
    _png_header_only(tmp_path / "bomb.png", side, side)
    with pytest.raises(JanusError, match=r"bomb\.png is too large to open safely.*downscale it"):
        open_image(tmp_path / "bomb.png")


def test_folder_given_as_image(tmp_path):
    with pytest.raises(JanusError, match=r"is a folder; give an image file"):
        open_image(tmp_path)


# ------------------------------------------------------------------------------------------------------------
# config.json values (each used to be a KeyError, ZeroDivisionError or TypeError)

def _set(path, value):
    def mutate(cfg):
        *parents, key = path
        d = cfg
        for p in parents:
            d = d[p]
        if value is KeyError:
            del d[key]
        else:
            d[key] = value
    return mutate


CONFIG_CASES = [  # (mutation of the official tiny config, message fragment)
    (("aligner_config", "params", "input_dim"), KeyError, r"aligner_config\.params: missing 'input_dim'"),
    (("gen_head_config", "params", "n_embed"), KeyError, r"gen_head_config\.params: missing 'n_embed'"),
    (("language_config", "num_attention_heads"), 0, r"language_config\.num_attention_heads must be a positive"),
    (("vision_config", "params", "heads"), 0, r"vision_config\.params\.heads must be a positive integer; got 0"),
    (("language_config", "hidden_size"), "64", r"language_config\.hidden_size must be a positive integer; got '64'"),
    (("language_config", "hidden_size"), -64, r"hidden_size must be a positive integer; got -64"),
    (("gen_vision_config", "params", "ch"), 12.5, r"gen_vision_config\.params\.ch must be a positive integer"),
    (("gen_vision_config", "params", "decoder_ch_mult"), [], r"decoder_ch_mult must be a non-empty list"),
    (("language_config", "rms_norm_eps"), float("nan"), r"rms_norm_eps must be a positive number; got nan"),
    (("language_config", "num_key_value_heads"), 3, r"num_attention_heads 4 is not a multiple of num_key_value_heads"),
    (("vision_config", "params", "patch_size"), 7, r"image_size 384 is not a multiple of patch_size 7"),
    (("vision_config", "params", "select_layer"), -9, r"select_layer -9 leaves no ViT blocks"),
    (("vision_config", "params"), [1], r"vision_config: params must be a JSON object"),
    (("gen_aligner_config", "params", "n_embed"), 32, r"gen_aligner n_embed is 32 but language hidden_size is 64"),
]


@pytest.mark.parametrize("path,value,message", CONFIG_CASES, ids=[f"{'.'.join(c[0])}={c[1]!r}" for c in CONFIG_CASES])
def test_bad_config_value_names_the_key(path, value, message):
    cfg = copy.deepcopy(TINY_OFFICIAL_CONFIG)
    _set(path, value)(cfg)
    with pytest.raises(ModelFilesError, match=message):
        parse_config(cfg)


@pytest.mark.parametrize("key,value,message", [
    ("text_config.num_attention_heads", 0, r"text_config\.num_attention_heads must be a positive integer"),
    ("vq_config.num_embeddings", "16384", r"vq_config\.num_embeddings must be a positive integer; got '16384'"),
    ("vision_config.hidden_size", -1, r"vision_config\.hidden_size must be a positive integer"),
])
def test_bad_hf_config_value_names_the_key(key, value, message):
    cfg = hf_config(copy.deepcopy(TINY_OFFICIAL_CONFIG))
    section, name = key.split(".")
    cfg[section][name] = value
    with pytest.raises(ModelFilesError, match=message):
        parse_config(cfg)


def test_bad_config_through_load_model(tiny_dir, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_dir, folder)
    cfg = json.loads((folder / "config.json").read_text())
    del cfg["language_config"]["num_attention_heads"]
    cfg["language_config"]["hidden_size"] = "wide"
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFilesError, match=r"config\.json language_config\.hidden_size .*got 'wide'"):
        load_model(folder)


# ------------------------------------------------------------------------------------------------------------
# model sources

def test_missing_owner_slash_name_path_is_not_downloaded(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # an attempt would fail with "Could not download"
    with pytest.raises(JanusError, match=r"models/Janus-Typo: no such folder \(tried .*models/Janus-Typo\).*"
                                         r"write hf:models/Janus-Typo") as err:
        resolve_model_path("models/Janus-Typo")
    assert "Could not download" not in str(err.value)


def test_hf_prefix_downloads_and_known_names_download(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the attempt fails at once; the message shows it was made
    with pytest.raises(JanusError, match=r"Could not download someone/Some-Janus"):
        resolve_model_path("hf:someone/Some-Janus", tmp_path / "dl")
    with pytest.raises(JanusError, match=r"Could not download deepseek-ai/Janus-Pro-1B"):
        resolve_model_path("deepseek-ai/Janus-Pro-1B", tmp_path / "dl")
    with pytest.raises(JanusError, match=r"not a Hugging Face repository name"):
        resolve_model_path("hf:no slash here")


def test_model_path_to_a_file_names_the_folder(tiny_dir):
    with pytest.raises(JanusError, match=r"config\.json is a file; pass the folder that holds it"):
        resolve_model_path(str(tiny_dir / "config.json"))
