"""hf://ORG/REPO[@REVISION][/SUBFOLDER] checkpoints through huggingface_hub's real download and
cache code, against a hub on 127.0.0.1 that serves a repository made here; then offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from helpers import fake_hub

from dmcodec import Tokenizer, load_checkpoint, save_release_checkpoint
from dmcodec.audio import write_wav
from dmcodec.signals import speech_like

ENCODE = ("import sys, json; from dmcodec import Tokenizer; t = Tokenizer.from_pretrained(sys.argv[1]); "
          "e = t.encode(sys.argv[2]); print(json.dumps({'sha': t.codec.sha256, 'codes': e.codes.tolist()}))")


def encode_in_a_fresh_process(reference: str, wav: Path, environment: dict[str, str]) -> subprocess.CompletedProcess:
    env = {**os.environ, **environment}
    return subprocess.run([sys.executable, "-c", ENCODE, reference, str(wav)], env=env, capture_output=True,
                           text=True, timeout=300)


def test_release_and_our_layouts_download_once_then_load_offline(tiny_checkpoint, tmp_path):
    repo = tmp_path / "repo"
    (repo / "speechtokenizer_hubert_avg").mkdir(parents=True)
    save_release_checkpoint(load_checkpoint(tiny_checkpoint, for_inference=False).model,
                            repo / "speechtokenizer_hubert_avg" / "SpeechTokenizer.pt")
    release_config = {k: v for k, v in json.loads((tiny_checkpoint / "config.json").read_text()).items()
                      if k != "dmcodec"}  # the release's config.json: the model's keys alone
    (repo / "speechtokenizer_hubert_avg" / "config.json").write_text(json.dumps(release_config))
    for name in ("config.json", "model.safetensors"):
        (repo / name).write_bytes((tiny_checkpoint / name).read_bytes())
    wav = tmp_path / "a.wav"
    write_wav(wav, speech_like(1.4, 16000, seed=77), 16000)
    with Tokenizer.from_pretrained(tiny_checkpoint) as local:
        expected = local.encode(wav).codes
    cache = {"HF_HOME": str(tmp_path / "hf-home")}
    with fake_hub(repo, "acme/dm-codec") as (endpoint, seen):
        online = {**cache, "HF_ENDPOINT": endpoint, "HF_HUB_OFFLINE": "0"}
        release = encode_in_a_fresh_process("hf://acme/dm-codec@main/speechtokenizer_hubert_avg", wav, online)
        ours = encode_in_a_fresh_process("hf://acme/dm-codec", wav, online)
        assert release.returncode == 0 and ours.returncode == 0, release.stderr[-2000:] + ours.stderr[-2000:]
        downloads = [path for method, path in seen if method == "GET" and "/resolve/" in path]
    assert any(p.endswith("SpeechTokenizer.pt") for p in downloads) and any(p.endswith(".safetensors")
                                                                               for p in downloads)
    for result in (release, ours):
        assert np.array_equal(np.array(json.loads(result.stdout)["codes"]), expected)
    # The hub is gone: offline mode loads from the cache; an uncached repository is a clear error.
    offline = {**cache, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"}
    again = encode_in_a_fresh_process("hf://acme/dm-codec@main/speechtokenizer_hubert_avg", wav, offline)
    assert again.returncode == 0 and np.array_equal(np.array(json.loads(again.stdout)["codes"]), expected)
    missing = subprocess.run([sys.executable, "-m", "dmcodec.cli", "info", "hf://acme/other"], capture_output=True,
                             text=True, env={**os.environ, **offline}, timeout=120)
    assert missing.returncode == 2 and "not in the Hugging Face cache" in missing.stderr
