import pytest
import torch
import torch.nn.functional as F

from explorer.models.registry import Conv2dSame, create_model, list_models


def test_known_architectures_build_with_class_count():
    for name in ("tiny_cnn", "mobilenet_v2", "mobilenet_v2_tf", "efficientnet_lite0"):
        model = create_model(name, 7)
        assert not model.training
        assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 7)
    assert "tiny_cnn" in list_models()


def test_unknown_architecture_lists_known():
    with pytest.raises(ValueError, match="unknown architecture 'resnet9000'.*tiny_cnn"):
        create_model("resnet9000", 3)


def test_torchvision_and_timm_prefixes():
    assert create_model("torchvision:resnet18", 4)(torch.zeros(1, 3, 32, 32)).shape == (1, 4)
    assert create_model("timm:resnet18", 4)(torch.zeros(1, 3, 32, 32)).shape == (1, 4)
    with pytest.raises(ValueError, match="timm has no architecture"):
        create_model("timm:not_a_model", 4)


def test_conv2d_same_pads_like_tensorflow():
    conv = Conv2dSame(1, 1, 3, stride=2, bias=False)
    x = torch.randn(1, 1, 224, 224)
    # TF SAME for 224 -> 112 with k=3, s=2 pads 0 on top/left and 1 on bottom/right
    expected = F.conv2d(F.pad(x, (0, 1, 0, 1)), conv.weight, stride=2)
    assert torch.allclose(conv(x), expected)
    assert conv(torch.randn(1, 1, 7, 7)).shape[-1] == 4
