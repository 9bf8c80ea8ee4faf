"""Building blocks of the OneNet family."""

from __future__ import annotations

from monai_onenet.networks.blocks.channel_levels import (
    ChannelConv,
    ChannelConvStack,
    OneNetDecoderLevel,
    OneNetEncoderLevel,
    cached_weight_bytes,
    clear_folded_weights,
    conv_after_affine,
    give_adn_orders_their_classes,
)
from monai_onenet.networks.blocks.classifier import OneNetClassifier
from monai_onenet.networks.blocks.conv_levels import UNetDecoderLevel, UNetEncoderLevel, double_conv
from monai_onenet.networks.blocks.hooks import has_forward_hooks
from monai_onenet.networks.blocks.oriented_conv import OrientedConv
from monai_onenet.networks.blocks.pixel_shuffle import channels_to_space, space_to_channels
from monai_onenet.networks.blocks.sequence_conv import SequenceConv, sequence_conv_reference, sequence_conv_shifted_add
from monai_onenet.networks.blocks.spatial_mixing import SPATIAL_MIXING, get_spatial_mixing
from monai_onenet.networks.blocks.stepped import SteppedSequential
from monai_onenet.networks.blocks.subpixel_head import SubpixelHead
from monai_onenet.networks.blocks.unshuffled_sequence_conv import fuses_unshuffle, unshuffled_sequence_conv

__all__ = [
    "ChannelConv",
    "ChannelConvStack",
    "cached_weight_bytes",
    "clear_folded_weights",
    "conv_after_affine",
    "give_adn_orders_their_classes",
    "OneNetDecoderLevel",
    "OneNetEncoderLevel",
    "OneNetClassifier",
    "UNetDecoderLevel",
    "UNetEncoderLevel",
    "double_conv",
    "has_forward_hooks",
    "OrientedConv",
    "channels_to_space",
    "space_to_channels",
    "SequenceConv",
    "sequence_conv_reference",
    "sequence_conv_shifted_add",
    "SPATIAL_MIXING",
    "get_spatial_mixing",
    "SteppedSequential",
    "SubpixelHead",
    "fuses_unshuffle",
    "unshuffled_sequence_conv",
]
