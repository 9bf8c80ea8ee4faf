"""Staging the bundles for MONAI Label, and loading them the way MONAI Label does (no MONAI Label needed)."""

from __future__ import annotations

import logging
import shutil

import pytest
import torch
from bundle_utils import BUNDLES
from monai.bundle import ConfigParser
from monai.transforms import Compose

from monai_onenet.label import LABEL_MODELS, UNTRAINED_MARKER, is_untrained, stage_bundle
from monai_onenet.networks import create_onenet


def bundle_network(name, **overrides):
    parser = ConfigParser()
    parser.read_config(str(BUNDLES[name.removeprefix("onenet_")] / "configs" / "inference.json"))
    for key, value in overrides.items():
        parser[key] = value
    return parser.get_parsed_content("network_def")


@pytest.mark.parametrize("name", list(LABEL_MODELS))
def test_without_weights_the_bundle_serves_random_weights_marked_untrained(name, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        staged = stage_bundle(name, tmp_path)
    assert staged == tmp_path / "model" / name
    assert sorted(p.name for p in (staged / "configs").iterdir()) == [
        "inference.json",
        "logging.conf",
        "metadata.json",
        "train.json",
    ]
    assert is_untrained(staged) and "UNTRAINED" in caplog.text
    bundle_network(name).load_state_dict(torch.load(staged / "models" / "model.pt"), strict=True)


def test_restaging_keeps_the_same_random_weights_and_a_checkpoint_replaces_them(tmp_path):
    first = torch.load(stage_bundle("onenet_heart", tmp_path) / "models" / "model.pt")
    again = torch.load(stage_bundle("onenet_heart", tmp_path) / "models" / "model.pt")
    assert all(torch.equal(first[k], again[k]) for k in first)

    trained = bundle_network("onenet_heart").state_dict()
    trained = {k: v + 1 if v.is_floating_point() else v for k, v in trained.items()}
    torch.save({"model": trained, "optimizer": {}}, tmp_path / "checkpoint_epoch=3.pt")
    staged = stage_bundle("onenet_heart", tmp_path, checkpoint=tmp_path / "checkpoint_epoch=3.pt")
    served = torch.load(staged / "models" / "model.pt")
    assert not is_untrained(staged)
    assert all(torch.equal(served[k], trained[k]) for k in trained)


def test_trained_weights_already_served_are_never_replaced_by_a_run_found_later(tmp_path):
    staged = stage_bundle("onenet_heart", tmp_path)
    (staged / "models" / UNTRAINED_MARKER).unlink()  # as after a training through MONAI Label
    served = torch.load(staged / "models" / "model.pt")
    other = tmp_path / "runs_model.pt"
    torch.save({k: torch.zeros_like(v) for k, v in served.items()}, other)

    stage_bundle("onenet_heart", tmp_path, search=[other])
    kept = torch.load(staged / "models" / "model.pt")
    assert all(torch.equal(kept[k], served[k]) for k in served)


def test_an_untrained_bundle_takes_the_first_trained_run_it_finds(tmp_path):
    stage_bundle("onenet_heart", tmp_path)
    run = tmp_path / "model.pt"
    trained = {k: torch.full_like(v, 0.5) for k, v in bundle_network("onenet_heart").state_dict().items()}
    torch.save(trained, run)
    staged = stage_bundle("onenet_heart", tmp_path, search=[tmp_path / "missing.pt", run])
    assert not is_untrained(staged)
    served = torch.load(staged / "models" / "model.pt")
    assert all(torch.equal(served[k], trained[k]) for k in trained)


@pytest.mark.parametrize(
    "name, error, match",
    [
        ("onenet_lung", ValueError, "unknown model 'onenet_lung'"),
        ("onenet_heart", FileNotFoundError, "Pass --bundles"),
    ],
)
def test_bad_model_name_or_bundles_folder_says_what_to_do(name, error, match, tmp_path):
    with pytest.raises(error, match=match):
        stage_bundle(name, tmp_path / "app", bundles_dir=tmp_path / "nowhere")


def test_a_checkpoint_of_another_network_is_refused_with_the_fix(tmp_path):
    torch.save(create_onenet("unet_4", in_channels=1, out_channels=2).state_dict(), tmp_path / "unet.pt")
    with pytest.raises(ValueError, match="does not fit the network"):
        stage_bundle("onenet_heart", tmp_path, checkpoint=tmp_path / "unet.pt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        stage_bundle("onenet_heart", tmp_path, checkpoint=tmp_path / "missing.pt")


@pytest.mark.parametrize("name", list(LABEL_MODELS))
def test_the_inference_config_loads_as_monai_label_loads_it(name, tmp_path):
    """MONAI Label reads only inference.json: it sets bundle_root, may write network_def#dropout, builds
    network_def, loads model.pt strictly, and instantiates preprocessing, inferer and postprocessing without
    running the bundle's initialize (so without its checkpoint and input checks)."""
    staged = stage_bundle(name, tmp_path)
    parser = ConfigParser()
    parser.read_config(str(staged / "configs" / "inference.json"))
    parser.config.update({"bundle_root": str(staged)})
    parser["network_def"]["dropout"] = 0.2
    parser["device"] = torch.device("cpu")
    network = parser.get_parsed_content("network_def", instantiate=True)
    network.load_state_dict(torch.load(staged / "models" / "model.pt"), strict=True)
    assert any(isinstance(m, torch.nn.Dropout) or "Dropout" in type(m).__name__ for m in network.modules())

    preprocessing = parser.get_parsed_content("preprocessing", instantiate=True)
    postprocessing = parser.get_parsed_content("postprocessing", instantiate=True)
    inferer = parser.get_parsed_content("inferer", instantiate=True)
    assert isinstance(preprocessing, Compose) and isinstance(postprocessing, Compose) and callable(inferer)


def test_a_checkpoint_replacing_trained_weights_keeps_them_beside(tmp_path, caplog):
    staged = stage_bundle("onenet_heart", tmp_path)
    (staged / "models" / UNTRAINED_MARKER).unlink()  # as after a training through MONAI Label
    trained = (staged / "models" / "model.pt").read_bytes()
    torch.save(bundle_network("onenet_heart").state_dict(), tmp_path / "other.pt")
    with caplog.at_level(logging.WARNING):
        stage_bundle("onenet_heart", tmp_path, checkpoint=tmp_path / "other.pt")
    (kept,) = (staged / "models").glob("model.pt.replaced-*")
    assert kept.read_bytes() == trained and "kept as" in caplog.text

    stage_bundle("onenet_heart", tmp_path, checkpoint=tmp_path / "other.pt")  # a restart with the same checkpoint
    assert len(list((staged / "models").glob("model.pt.replaced-*"))) == 1, "nothing new to keep"


def test_served_weights_that_no_longer_fit_the_edited_config_stop_the_start(tmp_path):
    staged = stage_bundle("onenet_heart", tmp_path)
    (staged / "models" / UNTRAINED_MARKER).unlink()
    bundles = tmp_path / "bundles"
    shutil.copytree(BUNDLES["heart"], bundles / "onenet_heart")
    config = bundles / "onenet_heart" / "configs" / "inference.json"
    config.write_text(config.read_text().replace('"network": "onenet_edge_4"', '"network": "onenet_ed_4"'))
    with pytest.raises(ValueError, match="does not fit the network"):
        stage_bundle("onenet_heart", tmp_path, bundles_dir=bundles)


def test_random_weights_follow_an_edited_config(tmp_path):
    stage_bundle("onenet_heart", tmp_path)
    bundles = tmp_path / "bundles"
    shutil.copytree(BUNDLES["heart"], bundles / "onenet_heart")
    config = bundles / "onenet_heart" / "configs" / "inference.json"
    config.write_text(config.read_text().replace('"network": "onenet_edge_4"', '"network": "onenet_ed_4"'))
    staged = stage_bundle("onenet_heart", tmp_path, bundles_dir=bundles)
    assert is_untrained(staged)
    create_onenet("onenet_ed_4", in_channels=1, out_channels=2).load_state_dict(
        torch.load(staged / "models" / "model.pt"), strict=True
    )


def test_corrupt_random_weights_are_rebuilt(tmp_path):
    staged = stage_bundle("onenet_heart", tmp_path)
    (staged / "models" / "model.pt").write_bytes(b"PK\x03\x04 cut short")
    stage_bundle("onenet_heart", tmp_path)
    bundle_network("onenet_heart").load_state_dict(torch.load(staged / "models" / "model.pt"), strict=True)
