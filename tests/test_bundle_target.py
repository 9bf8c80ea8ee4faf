from __future__ import annotations

import pytest
import torch
from monai.bundle import ConfigParser

import monai_onenet  # noqa: F401  (registers OneNet for "_target_" lookups)
from monai_onenet.networks import OneNet


@pytest.mark.parametrize(
    "target",
    ["OneNet", "monai_onenet.networks.OneNet", "monai_onenet.networks.nets.onenet.OneNet"],
)
def test_target_resolves_in_bundle_config(target):
    config = {
        "network_def": {
            "_target_": target,
            "spatial_dims": 2,
            "in_channels": 1,
            "out_channels": 2,
            "channels": [8, 16, 32],
            "spatial_mixing": "oriented",
            "dropout": 0.1,
        }
    }
    parser = ConfigParser(config)
    net = parser.get_parsed_content("network_def")
    assert isinstance(net, OneNet)
    assert net.eval()(torch.randn(1, 1, 16, 16)).shape == (1, 2, 16, 16)


def test_preset_factory_resolves_in_bundle_config():
    config = {
        "network_def": {
            "_target_": "monai_onenet.networks.create_onenet",
            "name": "onenet_ed_4",
            "in_channels": 1,
            "out_channels": 2,
            "channels": [4, 8, 16, 32, 64],
        }
    }
    net = ConfigParser(config).get_parsed_content("network_def")
    assert isinstance(net, OneNet) and net.depth == 4 and net.deep_supervision
