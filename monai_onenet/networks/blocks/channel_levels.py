"""OneNet's 1D levels: pixel-(un)shuffle, spatial mixing, channel-wise convolutions."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.blocks import ADN, Convolution

from monai_onenet.networks.blocks.fused_conv import onednn_conv, runs_fused_relu
from monai_onenet.networks.blocks.pixel_shuffle import channels_to_space, space_to_channels
from monai_onenet.networks.blocks.spatial_mixing import get_spatial_mixing
from monai_onenet.networks.blocks.stepped import SteppedSequential
from monai_onenet.networks.blocks.unshuffled_sequence_conv import fuses_unshuffle, unshuffled_sequence_conv

__all__ = [
    "ADN_ORDERINGS",
    "NormFirstADN",
    "ActFirstADN",
    "give_adn_orders_their_classes",
    "ChannelConv",
    "ChannelConvStack",
    "cached_weight_bytes",
    "clear_folded_weights",
    "conv_after_affine",
    "OneNetEncoderLevel",
    "OneNetDecoderLevel",
]


ADN_ORDERINGS = ("ADN", "NDA")


class NormFirstADN(ADN):
    """MONAI's :class:`~monai.networks.blocks.ADN` in ``"NDA"`` order, as a class of its own.

    TorchScript (torch 2.13) compiles one ``forward`` per ``nn.Sequential`` class and set of child names and types,
    whatever the children's order: an ``"NDA"`` ADN scripted in a process that has already scripted an ``"ADN"``
    one silently runs in ``"ADN"`` order, and the other way round. Each order used here gets a class of its own
    (this one and :class:`ActFirstADN`), so OneNet's blocks never share a compiled ``forward`` with each other or
    with MONAI's own networks scripted in the same process.
    """


class ActFirstADN(ADN):
    """MONAI's :class:`~monai.networks.blocks.ADN` in ``"ADN"`` order (the paper's), as a class of its own; see
    :class:`NormFirstADN`."""


def give_adn_orders_their_classes(module: nn.Module) -> None:
    """Give every plain MONAI ``ADN`` inside ``module`` the class of its order (:class:`ActFirstADN` when the
    activation comes before the norm, else :class:`NormFirstADN`), for models pickled before those classes."""
    for block in module.modules():
        if type(block) is ADN and "A" in block._modules and "N" in block._modules:
            names = list(block._modules)
            block.__class__ = ActFirstADN if names.index("A") < names.index("N") else NormFirstADN


class ChannelConv(Convolution):
    """The paper's channel-wise 1D conv ("PW"): a 1x1 convolution, then activation, dropout and normalisation.

    The authors' ``Conv1d(kernel=stride=C)`` over a channels-last flattening is exactly a 1x1 convolution.
    Normalisation comes after the activation, as in their code (``adn_ordering="ADN"``); ``"NDA"`` puts it
    before the activation, as most networks do.

    Args:
        spatial_dims: number of spatial dimensions.
        in_channels: input channels.
        out_channels: output channels.
        act: activation type and arguments.
        norm: feature normalisation type and arguments.
        dropout: dropout ratio.
        bias: whether the convolution has a bias.
        adn_ordering: order of activation (A), dropout (D) and normalisation (N). Defaults to ``"ADN"``.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        act: str | tuple | None,
        norm: str | tuple | None,
        dropout: float | tuple | None = 0.0,
        bias: bool = True,
        adn_ordering: str = "ADN",
    ):
        if adn_ordering not in ADN_ORDERINGS:
            raise ValueError(f"adn_ordering must be one of {ADN_ORDERINGS}, got {adn_ordering!r}.")
        super().__init__(
            spatial_dims,
            in_channels,
            out_channels,
            kernel_size=1,
            act=act,
            norm=norm,
            dropout=dropout,
            bias=bias,
            adn_ordering=adn_ordering,
        )
        self.adn.__class__ = NormFirstADN if adn_ordering == "NDA" else ActFirstADN


def _norm_as_affine(norm: nn.Module) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-channel ``(scale, shift)`` with which an eval-mode batch norm maps ``x`` to ``scale * x + shift``."""
    scale = torch.rsqrt(norm.running_var + norm.eps)
    shift = -norm.running_mean * scale
    if norm.weight is not None:
        scale = scale * norm.weight
        shift = shift * norm.weight + norm.bias
    return scale, shift


def _fold_input_affine(
    weight: torch.Tensor, bias: Optional[torch.Tensor], scale: torch.Tensor, shift: torch.Tensor
) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Weights with which a 1x1 convolution of ``x`` equals the original one of ``scale * x + shift``
    (``W diag(s)``, ``b + W t``; per input channel)."""
    folded_bias = weight.flatten(1) @ shift
    bias = folded_bias if bias is None else bias + folded_bias
    return weight * scale.view([1, -1] + [1] * (weight.dim() - 2)), bias


def conv_after_affine(conv: nn.Module, x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """``conv(scale * x + shift)`` for a 1x1 convolution ``conv``, per channel, without the pass over ``x``.

    Args:
        conv: an ``nn.Conv1d`` / ``Conv2d`` / ``Conv3d`` with kernel size 1, no padding and one group.
        x: its input ``(B, C, *S)``.
        scale: ``(C,)``.
        shift: ``(C,)``.

    Returns:
        ``conv``'s output for ``scale * x + shift``.

    Raises:
        ValueError: if ``conv`` is not such a convolution (the fold would not be exact).
    """
    padding = (0,) if isinstance(conv.padding, str) else conv.padding  # "same" and "valid" pad nothing at size 1
    if any(k != 1 for k in conv.kernel_size) or any(p != 0 for p in padding) or conv.groups != 1:
        raise ValueError(f"conv_after_affine needs a 1x1 convolution without padding or groups, got {conv}.")
    weight, bias = _fold_input_affine(conv.weight, conv.bias, scale, shift)
    return conv._conv_forward(x, weight, bias)


# Folded weights of eval-mode stacks, per stack and conv; outside the modules, so that pickling, deep copies and
# TorchScript never see them.
_FOLDED_WEIGHTS: weakref.WeakKeyDictionary[nn.Module, Dict[int, Dict[str, Any]]] = weakref.WeakKeyDictionary()


def _conv_then_act(
    conv: nn.Module, x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], act: Optional[nn.Module]
) -> torch.Tensor:
    """``act(conv(x))`` with the given weights; on the CPU without autograd a ReLU runs inside oneDNN's convolution.

    The fused kernel (the one ``torch.compile`` emits for conv + ReLU on the CPU) saves a full pass over the output,
    the largest remaining cost of a 1x1 conv at full resolution; it also takes ``weight`` already in oneDNN's layout
    (see :meth:`ChannelConvStack._weights_for`). Anything else runs unfused.
    """
    if runs_fused_relu(x, act):
        padding, stride, dilation = list(conv.padding), list(conv.stride), list(conv.dilation)
        return onednn_conv(x, weight, bias, padding, stride, dilation, conv.groups, activation="relu")
    x = conv._conv_forward(x, weight, bias)
    return x if act is None else act(x)


def cached_weight_bytes(module: nn.Module) -> int:
    """Bytes of the folded weights that the eval-mode :class:`ChannelConvStack` inside ``module`` keep for
    inference (see :meth:`ChannelConvStack._weights_for`); freed when the stacks go to train or eval mode.

    Example::

        >>> stack = ChannelConvStack(2, (8, 16), act="relu", norm="batch").eval()
        >>> with torch.no_grad():
        ...     _ = stack(torch.randn(1, 8, 4, 4))
        >>> cached_weight_bytes(stack) >= 16 * 8 * 4
        True
    """
    total = 0
    for stack in module.modules():
        for entry in list(_FOLDED_WEIGHTS.get(stack, {}).values()):
            own = {t.data_ptr() for t in entry["sources"]}  # an unfolded weight is the parameter itself
            tensors = [entry["dense"], entry["bias"], *entry["packed"].values()]
            extra = [t for t in tensors if t is not None and (t.is_mkldnn or t.data_ptr() not in own)]
            total += sum(t.numel() * t.element_size() for t in extra)
    return total


def clear_folded_weights(module: nn.Module) -> None:
    """Drop the folded weights that the :class:`ChannelConvStack` inside ``module`` keep for inference (see
    :func:`cached_weight_bytes`); the next eval pass folds them again. Needed after in-place edits through
    ``.data``, which no version counter sees."""
    for stack in module.modules():
        _FOLDED_WEIGHTS.pop(stack, None)


class ChannelConvStack(SteppedSequential):
    """A chain of :class:`ChannelConv` (``widths[0] -> widths[1] -> ...``).

    In eval mode with batch norm, every norm is folded into a 1x1 convolution, which is exact because a 1x1
    convolution is linear per pixel. A norm after the activation (``"ADN"``, the paper's order) folds into the
    next convolution (``W diag(s)``, ``b + W t``) and the last one runs as a multiply-add, in place when no
    gradient is needed (traces record it as a batch norm of zero mean and unit variance); a norm before it
    (``"NDA"``) folds into its own convolution (``diag(s) W``, ``s b + t``). This removes half of the
    full-resolution passes over memory that eval-mode OneNet makes. Training and TorchScript run the layers as they
    are, and so does eval with ``fast_path = False``.

    Args:
        spatial_dims: number of spatial dimensions.
        widths: input width, then the output width of each convolution.
        act: activation type and arguments.
        norm: feature normalisation type and arguments.
        dropout: dropout ratio.
        bias: whether the convolutions have a bias.
        adn_ordering: order of activation, dropout and normalisation in each conv. Defaults to ``"ADN"``.

    Example::

        >>> stack = ChannelConvStack(2, (3, 16, 16), act="relu", norm="batch")
        >>> stack.eval()(torch.randn(1, 3, 8, 8)).shape
        torch.Size([1, 16, 8, 8])
    """

    def __init__(
        self,
        spatial_dims: int,
        widths: Sequence[int],
        act: str | tuple | None,
        norm: str | tuple | None,
        dropout: float | tuple | None = 0.0,
        bias: bool = True,
        adn_ordering: str = "ADN",
    ):
        super().__init__(
            *(
                ChannelConv(spatial_dims, w_in, w_out, act, norm, dropout, bias, adn_ordering)
                for w_in, w_out in zip(widths, widths[1:])
            )
        )
        norms = [layer.adn._modules.get("N") for layer in self]
        self.fast_path = True
        self.folds_norms = len(norms) > 0 and all(
            isinstance(n, nn.modules.batchnorm._BatchNorm) and n.track_running_stats for n in norms
        )
        self.norm_after_act = "A" not in adn_ordering or adn_ordering.index("N") > adn_ordering.index("A")

    def runs_folded(self) -> bool:
        """Whether :meth:`step` folds the norms (eval mode, batch norms, ``fast_path``, not TorchScript)."""
        return self.fast_path and self.folds_norms and not self.training and not torch.jit.is_scripting()

    def step(self, x: torch.Tensor, index: int, output_norm: bool = True) -> torch.Tensor:
        """Conv ``index`` of the chain alone (see :class:`SteppedSequential`).

        In eval mode with folded norms (``"ADN"``), a step's output before the last one lacks its own norm, which
        the next step has folded in: only the whole sequence of steps gives the chain's output.

        Args:
            x: the output of step ``index - 1``.
            index: which conv.
            output_norm: ``False`` leaves the last conv's norm out when :meth:`output_affine` is not None, for a
                caller that folds that affine map into the 1x1 convolution that follows (see
                :func:`conv_after_affine`).
        """
        # is_scripting() stays in this condition: it drops the branch, whose calls TorchScript cannot compile.
        if self.runs_folded() and not torch.jit.is_scripting():
            if self.norm_after_act:
                return self._folded_step(x, index, output_norm)
            return self._folded_pre_act_step(x, index)
        return self.plain_step(x, index)

    @torch.jit.unused
    def step_reordered(self, x: torch.Tensor, index: int, input_order: torch.Tensor) -> torch.Tensor:
        """:meth:`step` for an input whose channel ``j`` holds channel ``input_order[j]`` of the input :meth:`step`
        expects. With folded norms the conv reads the channels in that order (its weight's columns permuted), so
        the caller need not put them back; otherwise they are put back first.
        """
        if self.runs_folded():
            if self.norm_after_act:
                return self._folded_step(x, index, True, input_order)
            return self._folded_pre_act_step(x, index, input_order)
        return self.plain_step(x.index_select(1, torch.argsort(input_order)), index)

    @torch.jit.unused
    def output_affine(self) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
        """``(scale, shift)`` of the last norm when :meth:`step` can leave it to the caller, else None."""
        if not (self.runs_folded() and self.norm_after_act):
            return None
        return _norm_as_affine(self[self.steps - 1].adn.N)

    @torch.jit.unused
    def _folded_weights(self, index: int) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Weight and bias of conv ``index`` with the norms it absorbs (see :meth:`step`)."""
        conv = self[index].conv
        norm = self._absorbed_norm(index)
        if norm is None:
            return conv.weight, conv.bias
        scale, shift = _norm_as_affine(norm)
        if not self.norm_after_act:  # its own norm, on its output
            bias = shift if conv.bias is None else conv.bias * scale + shift
            return conv.weight * scale.view([-1] + [1] * (conv.weight.dim() - 1)), bias
        return _fold_input_affine(conv.weight, conv.bias, scale, shift)

    @torch.jit.unused
    def _absorbed_norm(self, index: int) -> Optional[nn.Module]:
        """The norm that conv ``index`` absorbs: its own (``"NDA"``), else the previous conv's (``"ADN"``; none for
        the first)."""
        if not self.norm_after_act:
            return self[index].adn.N
        return self[index - 1].adn.N if index > 0 else None

    @torch.jit.unused
    def _weights_for(
        self, index: int, x: torch.Tensor, input_order: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Weight and bias with which :func:`_conv_then_act` runs conv ``index`` on ``x``.

        Without autograd they are computed once and kept until a parameter or running statistic they come from
        changes (new storage, an in-place update, a batch counted by a norm), the stack is set to train or eval
        mode or moved (``.to()``), or :func:`clear_folded_weights` is called. In-place edits through ``.data``
        (``p.data.mul_(...)``, an EMA's ``p.data.copy_(...)``) bypass the version counters that tell: call
        :func:`clear_folded_weights` after them. Where the fused kernel runs, the weight is kept in oneDNN's layout
        for the input size, which spares the kernel its reorder on every call. Inference then spends no time
        folding norms or reordering weights, which took 3-8% of OneNet_ed,4's CPU time (most of it at the deepest
        levels, where a 1024 x 2048 weight meets a 16 x 16 map). One copy of each conv's weight is kept
        (:func:`cached_weight_bytes` tells how much).
        Under autograd or a trace they are computed afresh, so gradients reach the parameters and traces record
        the folding; so are they for an ``input_order`` (see :meth:`step_reordered`).
        """
        if input_order is not None:
            weight, bias = self._folded_weights(index)
            return weight.index_select(1, input_order), bias
        sources = self._fold_sources(index)
        fresh = torch.is_grad_enabled() or torch.jit.is_tracing()
        if fresh or any(t.is_inference() for t in sources):  # inference-mode tensors keep no version counter
            return self._folded_weights(index)
        key = tuple((t.data_ptr(), t._version, t.device, t.dtype) for t in sources)
        cache = _FOLDED_WEIGHTS.setdefault(self, {})
        entry = cache.get(index)
        if entry is None or entry["key"] != key:
            weight, bias = self._folded_weights(index)
            # the sources are kept so that their storage cannot be freed and reused under an equal key
            entry = {"key": key, "sources": sources, "dense": weight, "bias": bias, "packed": {}}
            cache[index] = entry
        # Entries are replaced whole, never changed in place: threads sharing the model keep the entry they read.
        if x.dim() == 4 and runs_fused_relu(x, self[index].adn._modules.get("A")):
            shape = tuple(x.shape)
            packed = entry["packed"].get(shape)
            if packed is None:
                conv = self[index].conv
                dense = entry["dense"] if entry["dense"] is not None else self._folded_weights(index)[0]
                packed = torch.ops.mkldnn._reorder_convolution_weight(
                    dense, list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups, shape
                )
                cache[index] = {**entry, "dense": None, "packed": {shape: packed}}  # one copy, one input size
            return packed, entry["bias"]
        dense = entry["dense"]
        if dense is None:
            dense = self._folded_weights(index)[0]
            cache[index] = {**entry, "dense": dense, "packed": {}}
        return dense, entry["bias"]

    @torch.jit.unused
    def _fold_sources(self, index: int) -> List[torch.Tensor]:
        """The tensors :meth:`_folded_weights` reads for conv ``index``."""
        conv = self[index].conv
        tensors = [conv.weight, conv.bias]
        norm = self._absorbed_norm(index)
        if norm is not None:
            # batch norm updates its running statistics without bumping their version counters; the batch count
            # it increments beside them does bump
            tensors += [norm.weight, norm.bias, norm.running_mean, norm.running_var, norm.num_batches_tracked]
        return [t for t in tensors if t is not None]

    def train(self, mode: bool = True) -> ChannelConvStack:
        _FOLDED_WEIGHTS.pop(self, None)  # training changes what they were folded from
        return super().train(mode)

    def _apply(self, fn, *args, **kwargs):
        _FOLDED_WEIGHTS.pop(self, None)  # .to(), .double(), .cuda(): the folded copies would only hold memory
        return super()._apply(fn, *args, **kwargs)

    @torch.jit.unused
    def _folded_pre_act_step(
        self, x: torch.Tensor, index: int, input_order: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        layer = self[index]
        weight, bias = self._weights_for(index, x, input_order)
        return _conv_then_act(layer.conv, x, weight, bias, layer.adn._modules.get("A"))

    @torch.jit.unused
    def _folded_step(
        self, x: torch.Tensor, index: int, output_norm: bool, input_order: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        layer = self[index]
        weight, bias = self._weights_for(index, x, input_order)
        x = _conv_then_act(layer.conv, x, weight, bias, layer.adn._modules.get("A"))
        if index < self.steps - 1 or not output_norm:
            return x
        scale, shift = _norm_as_affine(layer.adn.N)
        view = [1, -1] + [1] * (x.dim() - 2)
        if torch.jit.is_tracing():  # an ONNX BatchNormalization, which ONNX Runtime runs in its blocked layout
            mean, var = torch.zeros_like(scale), torch.ones_like(scale)
            return F.batch_norm(x, mean, var, scale, shift, training=False, momentum=0.0, eps=0.0)
        if torch.is_grad_enabled():
            return torch.addcmul(shift.view(view), x, scale.view(view))
        return torch.addcmul(shift.view(view), x, scale.view(view), out=x)  # one pass, in place


def _check_level_convs(level_convs: int) -> None:
    if level_convs < 1:
        raise ValueError(f"level_convs must be >= 1, got {level_convs}.")


class OneNetEncoderLevel(nn.Module):
    """One encoder level of OneNet: pixel-unshuffle, spatial mixing, channel-wise convs (two in the paper).

    Args:
        spatial_dims: number of spatial dimensions.
        in_channels: channels before unshuffling (``2^d`` times as many after it).
        out_channels: output channels.
        spatial_mixing: ``"sequence"``, ``"oriented"`` or ``"none"``.
        mixing_kernel_size: kernel length of the spatial mixing.
        act: activation type and arguments.
        norm: feature normalisation type and arguments.
        dropout: dropout ratio.
        bias: whether the convolutions have a bias.
        adn_ordering: order of activation, dropout and normalisation. Defaults to ``"ADN"`` (the paper's).
        level_convs: number of channel-wise convs. Defaults to 2 (the paper's).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        spatial_mixing: str,
        mixing_kernel_size: int,
        act: str | tuple | None,
        norm: str | tuple | None,
        dropout: float | tuple | None = 0.0,
        bias: bool = True,
        adn_ordering: str = "ADN",
        level_convs: int = 2,
    ):
        super().__init__()
        _check_level_convs(level_convs)
        folded = in_channels * 2**spatial_dims
        self.mixing = get_spatial_mixing(spatial_mixing, spatial_dims, folded, mixing_kernel_size)
        widths = (folded,) + (out_channels,) * level_convs
        self.convs = ChannelConvStack(spatial_dims, widths, act, norm, dropout, bias, adn_ordering)

    def downsample(self, x: torch.Tensor) -> torch.Tensor:
        return space_to_channels(x, 2)

    @torch.jit.unused
    def mixes_while_downsampling(self, x: torch.Tensor) -> bool:
        """Whether :meth:`downsample_and_mix` runs as one step on ``x``: the paper's spatial conv on a 1D / 2D CPU
        map, as one strided convolution of ``x``
        (:func:`~monai_onenet.networks.blocks.unshuffled_sequence_conv.unshuffled_sequence_conv`)."""
        return fuses_unshuffle(self.mixing, x)

    def downsample_and_mix(self, x: torch.Tensor) -> torch.Tensor:
        """``mixing(downsample(x))``, in one step where :meth:`mixes_while_downsampling`."""
        if not torch.jit.is_scripting():
            if self.mixes_while_downsampling(x):
                return unshuffled_sequence_conv(x, self.mixing)
        return self.mixing(self.downsample(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(self.downsample_and_mix(x))


class OneNetDecoderLevel(nn.Module):
    """One decoder level of OneNet_ed: pixel-shuffle, concat the skip, spatial mixing, channel-wise convs (two in
    the paper).

    The width is not halved after the concatenation (pixel-shuffle already divides it by ``2^d``).

    Args:
        spatial_dims: number of spatial dimensions.
        in_channels: channels before shuffling (divisible by ``2^d``).
        skip_channels: channels of the encoder skip; 0 at the top level, which has none.
        out_channels: output channels.
        spatial_mixing: ``"sequence"``, ``"oriented"`` or ``"none"``.
        mixing_kernel_size: kernel length of the spatial mixing.
        act: activation type and arguments.
        norm: feature normalisation type and arguments.
        dropout: dropout ratio.
        bias: whether the convolutions have a bias.
        adn_ordering: order of activation, dropout and normalisation. Defaults to ``"ADN"`` (the paper's).
        level_convs: number of channel-wise convs. Defaults to 2 (the paper's).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        skip_channels: int,
        out_channels: int,
        spatial_mixing: str,
        mixing_kernel_size: int,
        act: str | tuple | None,
        norm: str | tuple | None,
        dropout: float | tuple | None = 0.0,
        bias: bool = True,
        adn_ordering: str = "ADN",
        level_convs: int = 2,
    ):
        super().__init__()
        _check_level_convs(level_convs)
        block = 2**spatial_dims
        if in_channels % block != 0:
            raise ValueError(f"OneNetDecoderLevel needs in_channels divisible by {block}, got {in_channels}.")
        merged = in_channels // block + skip_channels
        self.mixing = get_spatial_mixing(spatial_mixing, spatial_dims, merged, mixing_kernel_size)
        widths = (merged,) + (out_channels,) * level_convs
        self.convs = ChannelConvStack(spatial_dims, widths, act, norm, dropout, bias, adn_ordering)

    def upsample(self, x: torch.Tensor) -> torch.Tensor:
        return channels_to_space(x, 2)

    def concat(self, x: torch.Tensor, skip: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Put the skip before the upsampled ``x``."""
        return x if skip is None else torch.cat([skip, x], dim=1)

    def merge(self, x: torch.Tensor, skip: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Pixel-shuffle ``x`` and put the skip before it."""
        return self.concat(self.upsample(x), skip)

    def forward(self, x: torch.Tensor, skip: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.convs(self.mixing(self.merge(x, skip)))
