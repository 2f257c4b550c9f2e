"""onnxruntime-genai runs a blueprint decoder build as it is (its genai_config.json), and its
greedy generation is blueprint's own: same ids, token for token (an independent generation loop
over the same graph: its own cache handling, position ids from the mask, and argmax)."""

from __future__ import annotations

import json

import pytest
from buildfixtures import DECODERS, ENCODERS

from blueprint import runtime

og = pytest.importorskip("onnxruntime_genai")


@pytest.mark.parametrize("name", ["llama-tiny", "mistral-tiny", "gpt2-tiny", "mistral-tiny-portable",
                                  "mistral-tiny+window"])
def test_onnxruntime_genai_generates_what_blueprint_generates(builds, name, tmp_path):
    """Fused builds (shared cache), a portable (plain export) build and a window-cache build
    (onnxruntime-genai's shared buffer of max_length rows is its capacity) alike."""
    if name.endswith("-portable"):
        from buildfixtures import SPECS

        from compiler.export.build import build

        d = build(SPECS / f"{name.removesuffix('-portable')}.yaml", tmp_path / "p", verify=False,
                  portable=True).directory
    else:
        d = builds(name).directory
    assert "genai_config.json" in json.loads((d / "manifest.json").read_text())["files"]
    prompt = [5, 17, 99, 3, 42, 7, 11, 23, 64, 1, 9, 30]  # past mistral-tiny's window when generating
    new = 24
    ours = runtime.load(d).generate(prompt, max_new_tokens=new, stop_ids=[]).ids
    model = og.Model(str(d))
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(prompt) + new, do_sample=False)
    generator = og.Generator(model, params)
    generator.append_tokens(prompt)
    theirs = []
    while not generator.is_done():
        generator.generate_next_token()
        theirs.append(int(generator.get_next_tokens()[0]))
    eos = json.loads((d / "genai_config.json").read_text())["model"]["eos_token_id"]
    eos = set(eos) if isinstance(eos, list) else {eos}
    stop = next((i for i, t in enumerate(ours) if t in eos), None)
    if stop is not None:  # onnxruntime-genai stops at an end-of-sequence id (and includes it)
        ours = ours[:stop + 1]
    assert theirs == ours


def test_every_decoder_build_has_a_config_and_no_encoder_build_does(builds):
    for name in DECODERS:
        config = json.loads((builds(name).directory / "genai_config.json").read_text())
        assert config["model"]["type"] == "decoder"
        fused = json.loads((builds(name).directory / "manifest.json").read_text())["export"] == "fused"
        # a fused build's GroupQueryAttention appends to a cache past and present share
        assert config["search"]["past_present_share_buffer"] is fused
    for name in ENCODERS:
        assert not (builds(name).directory / "genai_config.json").exists()
